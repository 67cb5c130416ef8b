"""Narrow fixes for Feast 0.67 behaviour that this repository's users would trip over, and
the one adapter over Feast's private API (the functions at the end of this module).

``featurelib.online_store`` applies them on import. Feast imports that module for every
``feast`` command and every ``FeatureStore`` of this repository, because
``feature_store.yaml`` names it as the online store, so the fixes are always in place.
Each is tested (``tests/test_feast_compat.py``) and documented in ``docs/FEAST_NOTES.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from feast import utils
from feast.errors import FeastObjectNotFoundException

T = TypeVar("T")


class UnknownFeatureError(FeastObjectNotFoundException, KeyError):
    """A feature reference names a view that has no such feature.

    Still a ``KeyError`` (what Feast raised before), and now a ``FeastError`` too, so
    ``feast serve`` answers 404 with this message instead of 500.
    """

    def __init__(self, feature: str, view: str):
        self.__overridden_message__ = f"Feature {feature} not found in feature view {view}"
        super().__init__(self.__overridden_message__)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.__overridden_message__


def _registry_dump_handles_python_odfvs() -> None:
    """``feast registry-dump`` crashes with ``KeyError: 'substraitPlan'`` on any
    ``mode="python"`` on-demand view.

    ``BaseRegistry.to_dict`` special-cases ``PandasTransformation`` and
    ``SubstraitTransformation``; every other transformation falls into a branch that
    writes ``["featureTransformation"]["substraitPlan"]["body"]``. A Python
    transformation is serialized as ``userDefinedFunction`` only, so the key is missing.
    The isinstance check reads the module global ``PandasTransformation`` (used nowhere
    else in that module); widening it to include ``PythonTransformation`` sends Python
    views down the branch that dumps their source, which is what a dump should show.
    """
    from feast.infra.registry import base_registry
    from feast.transformation.pandas_transformation import PandasTransformation
    from feast.transformation.python_transformation import PythonTransformation

    if base_registry.PandasTransformation is PandasTransformation:
        base_registry.PandasTransformation = (PandasTransformation, PythonTransformation)  # type: ignore[assignment]


def _unknown_feature_is_not_found() -> None:
    """``FeatureViewProjection.get_feature`` raises a bare ``KeyError`` for an unknown
    feature, which ``feast serve`` turns into HTTP 500; raise ``UnknownFeatureError``."""
    from feast.feature_view_projection import FeatureViewProjection

    if getattr(FeatureViewProjection.get_feature, "_featurelib", False):
        return

    def get_feature(self, feature_name: str):
        for f in self.features:
            if f.name == feature_name:
                return f
        raise UnknownFeatureError(feature_name, self.name_to_use())

    get_feature._featurelib = True  # type: ignore[attr-defined]
    FeatureViewProjection.get_feature = get_feature  # type: ignore[method-assign]


def _feature_services_built_once_per_registry() -> None:
    """``Registry.get_feature_service(..., allow_cache=True)`` builds a new ``FeatureService``
    from its proto on every call (about 1.9 ms for ``fraud_detection``, half of it runtime type
    checks), and ``feast serve`` calls it for every request naming a service. With the cache
    allowed, keep the object per (project, name) for as long as the registry proto it was built
    from is the one Feast serves; without it (the SDK's default), Feast re-reads the registry as
    before."""
    from feast.infra.registry import proto_registry_utils
    from feast.infra.registry.registry import Registry

    if getattr(Registry.get_feature_service, "_featurelib", False):
        return
    original = Registry.get_feature_service

    def get_feature_service(self, name: str, project: str, allow_cache: bool = False):
        if not allow_cache:
            return original(self, name, project, allow_cache)
        proto = self._get_registry_proto(project=project, allow_cache=True)
        built = self.__dict__.setdefault("_featurelib_services", {})
        hit = built.get((project, name))
        if hit is not None and hit[0] is proto:
            return hit[1]
        service = proto_registry_utils.get_feature_service(proto, name, project)
        built[(project, name)] = (proto, service)
        return service

    get_feature_service._featurelib = True  # type: ignore[attr-defined]
    Registry.get_feature_service = get_feature_service  # type: ignore[method-assign]


def _clear_meta(message) -> None:
    for fd, value in message.ListFields():
        if fd.name == "meta":
            message.ClearField("meta")
        elif fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            for item in (value if fd.is_repeated else [value]):
                _clear_meta(item)


def _without_bookkeeping(value: object) -> object:
    """A copy of a proto message with every nested ``meta`` (creation and update times)
    cleared; other values unchanged."""
    if not hasattr(value, "DESCRIPTOR"):
        return value
    copy = type(value)()
    copy.CopyFrom(value)
    _clear_meta(copy)
    return copy


def _plan_ignores_bookkeeping() -> None:
    """``feast plan`` reports every materialized feature view as "Updated", with hundreds of
    lines of timestamp-only differences, when nothing was changed.

    ``FeatureView.__eq__`` compares ``materialization_intervals``, which a declared view never
    has, so Feast lists the view's proto fields that differ; the stored view's data sources
    carry ``meta`` (creation and update times) and the declared ones do not. Drop the property
    differences that vanish without ``meta``; a view left with none is unchanged (Feast's
    registry keeps its materialization intervals across ``feast apply`` either way).
    """
    from feast.diff import registry_diff
    from feast.diff.property_diff import TransitionType

    original = registry_diff.diff_registry_objects
    if getattr(original, "_featurelib", False):
        return

    def diff_registry_objects(current, new, object_type):
        diff = original(current, new, object_type)
        if diff.transition_type != TransitionType.UPDATE:
            return diff
        real = [p for p in diff.feast_object_property_diffs
                if _without_bookkeeping(p.val_existing) != _without_bookkeeping(p.val_declared)]
        diff.feast_object_property_diffs = real
        if not real:
            diff.transition_type = TransitionType.UNCHANGED
        return diff

    diff_registry_objects._featurelib = True  # type: ignore[attr-defined]
    registry_diff.diff_registry_objects = diff_registry_objects


def apply() -> None:
    _plan_ignores_bookkeeping()
    _registry_dump_handles_python_odfvs()
    _unknown_feature_is_not_found()
    _feature_services_built_once_per_registry()


# ------------------------------------------------------------------- Feast's private API
# Every private Feast function or attribute this repository uses, named for what it does here.
# They may change in any Feast release; this is the one place to adapt.


def utc_now() -> datetime:
    """Feast's clock (``feast.utils._utc_now``): the store and the provider read it, so a test
    that freezes Feast's clock freezes theirs."""
    return utils._utc_now()


def arrow_to_rows(batch: Any, view: Any, join_keys: dict) -> list:
    """Feast's conversion of an Arrow batch to ``online_write_batch`` rows."""
    return utils._convert_arrow_to_proto(batch, view, join_keys)


def unique_entities(view: Any, join_key_values: dict, entity_name_to_join_key_map: dict) -> tuple:
    """Feast's de-duplication of a request's entity rows: (values, indexes, output length)."""
    return utils._get_unique_entities(view, join_key_values, entity_name_to_join_key_map)


def entity_key_protos(values: Any) -> list:
    return utils._get_entity_key_protos(values)


def populate_response(requested: list, rows: list, idxs: Any, response: Any, full_feature_names: bool,
                      view: Any, output_len: int, include_meta: bool) -> None:
    """Feast's filling of an online response from one view's rows."""
    utils._populate_response_from_feature_data(requested, rows, idxs, response, full_feature_names, view,
                                               output_len, include_meta)


def parse_feature_ref(ref: str) -> tuple:
    """``view[@version]:feature`` -> (view, version, feature), as Feast parses it."""
    return utils._parse_feature_ref(ref)


def cached_request_context(registry: Any, project: str, features: Any, full_feature_names: bool) -> Any:
    """Feast's resolution of a request's feature references (views, join keys, request fields)."""
    return utils._get_cached_request_context(registry, project, features, full_feature_names)


def parse_redis_connection_string(text: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Nodes and client keyword arguments, as Feast's Redis store parses its connection string."""
    from feast.infra.online_stores.redis import RedisOnlineStore

    return RedisOnlineStore._parse_connection_string(text)


def online_store_of(store: Any) -> Any:
    """The online store object a ``FeatureStore`` uses (its provider's)."""
    return store._get_provider().online_store


def online_client(store: Any) -> Any:
    """The redis-py client of the configured online store, this repository's or Feast's own
    Redis store (both build it in ``_get_client``)."""
    return online_store_of(store)._get_client(store.config.online_store)


def cached_on(obj: Any, key: str, build: Callable[[], T]) -> T:
    """A value kept on a Feast object (in its ``__dict__``, beside Feast's own attributes): Feast
    hands the same registry objects to every call until the registry is refreshed, so whatever
    is derived from one is built once."""
    value = obj.__dict__.get(key)
    if value is None:
        value = obj.__dict__[key] = build()
    return value
