"""Narrow fixes for Feast 0.67 behaviour that this repository's users would trip over.

``featurelib.online_store`` applies them on import. Feast imports that module for every
``feast`` command and every ``FeatureStore`` of this repository, because
``feature_store.yaml`` names it as the online store, so the fixes are always in place.
Each is tested (``tests/test_feast_compat.py``) and documented in ``docs/FEAST_NOTES.md``.
"""

from __future__ import annotations

from feast.errors import FeastObjectNotFoundException


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
