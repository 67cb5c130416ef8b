"""Compiled online reads: resolve a feature list or service once, then each request is keys,
one pipelined round trip, decoding and the on-demand view.

``ReadPlans.plan(...)`` resolves the requested features through Feast's own resolution
(``feast.utils._get_cached_request_context``: the same views, join keys, request fields,
name collisions and not-found errors as Feast) and compiles it into a ``ReadPlan``, kept
per (features or service name, project, ``full_feature_names``) until the registry is
refreshed. A request is then:

1. ``ReadPlan.bind(entity_rows)``: validate the entity rows (every join key present, no
   null or wrongly typed id, request fields typed as their ``RequestSource`` declares,
   equal lengths) and build each view's Redis keys (``contract.hash_keys``), one per
   distinct entity;
2. one pipelined ``HMGET`` of ``_event_ts`` and the requested fields for every (view,
   entity), sync or asyncio (``BoundRequest.commands``);
3. ``BoundRequest.result(replies)``: decode, apply the view TTL and the 60 s future rule
   exactly as ``featurelib.online_store`` does, run the on-demand views in Python mode,
   and return a ``ReadResult`` with Feast's columns, values, statuses and timestamps.

This module resolves and compiles plans (and keeps them); steps 2 and 3, the bound request
and its result, are ``featurelib.serving.reads``.

Statuses follow Feast's: an entity without a row is ``NOT_FOUND`` (null, timestamp 0), a
row older than the view's ``ttl`` is ``OUTSIDE_MAX_AGE`` (null, the row's timestamp), a
stored row's field is ``PRESENT`` (null when the hash has no such field). One addition: a
stored value that does not parse as its declared type is null with status ``NULL_VALUE``,
logged and counted (``serving.observe``), and every other value of the request is served.

A plan is compiled only for what it reproduces exactly; anything else (entityless views,
join-key aliases, versioned or aliased views, on-demand views that are not plain Python
mode or that write to the online store, ``full_feature_names`` with on-demand views, value
types outside the contract's scalars and lists) gets ``None``, and the caller uses Feast's
own path. ``tests/test_serving_plan.py`` compares both on random requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from feast.feature_service import FeatureService
from feast.value_type import ValueType

from featurelib import codecs, contract, feast_compat
from featurelib.errors import BadRequestError
from featurelib.serving.reads import (  # ReadResult: re-exported, tests import it from here
    BoundRequest,
    ReadResult,  # noqa: F401
)
from featurelib.serving.request_checks import (
    ID_TYPES,
    REQUEST_TYPES,
    checked_ids,
    checked_request_values,
    columnar,
    row_count,
)

_MAX_PLANS = 512


def _float32(raw: bytes) -> float:
    return float(np.float32(float(raw)))


def _float32_list(items: list) -> list:
    return np.array(items, dtype=np.float32).tolist()


def _decoder(value_type: ValueType) -> Callable[[bytes], Any] | None:
    """Stored text -> the Python value Feast's ``OnlineResponse.to_dict`` gives for it."""
    if value_type in (ValueType.INT64, ValueType.INT32):
        return int
    if value_type == ValueType.DOUBLE:
        return float
    if value_type == ValueType.FLOAT:
        return _float32
    if value_type == ValueType.STRING:
        return bytes.decode
    if value_type == ValueType.BOOL:
        return lambda raw: codecs.parse_bool(raw.decode())
    if value_type == ValueType.BYTES:
        return bytes
    if value_type in (
        ValueType.INT32_LIST,
        ValueType.INT64_LIST,
        ValueType.DOUBLE_LIST,
        ValueType.BOOL_LIST,
        ValueType.STRING_LIST,
    ):
        parse = codecs.codec(value_type).from_text
        return lambda raw: parse(raw.decode())
    if value_type == ValueType.FLOAT_LIST:
        parse = codecs.codec(value_type).from_text
        return lambda raw: _float32_list(parse(raw.decode()))
    return None  # timestamps, maps, structs...: Feast's own path


@dataclass
class ViewRead:
    """One stored view of a plan: its keys' shape, the fields read and how to decode them."""

    name: str
    join_keys: tuple[str, ...]
    fields: list[str]
    decoders: list[Callable[[bytes], Any]]
    out_names: list[str]
    ttl_us: int
    value_types: list[ValueType]
    hmget_args: list[str] = field(default_factory=list)


@dataclass
class OnDemandRead:
    """One on-demand view of a plan: the columns hidden from its function and the outputs kept."""

    view: Any
    hidden: frozenset[str]
    wanted: frozenset[str]
    types: dict[str, ValueType]
    aliases: list[tuple[str, str]]  # (view__feature, feature) of every source feature

    def transform(self, inputs: dict[str, list]) -> dict[str, list]:
        """``OnDemandFeatureView.transform_dict`` without its per-call runtime type checks: both
        names of every source feature present, the function's outputs over its inputs, the
        added names removed again."""
        if self.view.singleton:
            return self.view.transform_dict(inputs)
        added = []
        for full, short in self.aliases:
            if full in inputs:
                inputs[short] = inputs[full]
                added.append(short)
            elif short in inputs:
                inputs[full] = inputs[short]
                added.append(full)
        merged = {**inputs, **self.view.feature_transformation.udf(inputs)}
        for name in added:
            merged.pop(name, None)
        return merged


class ReadPlan:
    """A feature list or service, resolved and compiled (see module docstring)."""

    def __init__(self, ctx: tuple, full_feature_names: bool, prefix: str):
        (feature_refs, odfvs, _, entity_type_map, join_keys_set, grouped_refs, requested_names, request_fields, _) = ctx
        self.prefix = prefix
        self.requested_names = requested_names
        self.join_key_types: dict[str, ValueType] = {
            k: entity_type_map.get(k, ValueType.UNKNOWN) for k in join_keys_set if isinstance(k, str)
        }
        self.views: list[ViewRead] = []
        self.feature_types: dict[str, ValueType] = {}
        for table, requested in grouped_refs:
            types = {f.name: f.dtype.to_value_type() for f in table.features}
            name = table.projection.name_to_use()
            out = [f"{name}__{f}" if full_feature_names else f for f in requested]
            join_keys = tuple(table.join_keys)
            view = ViewRead(
                table.name,
                join_keys,
                list(requested),
                [_decoder(types[f]) for f in requested],
                out,
                int(table.ttl.total_seconds() * 1_000_000) if table.ttl else 0,
                [types[f] for f in requested],
            )
            view.hmget_args = [contract.EVENT_TS, *view.fields]
            self.views.append(view)
            for f, o in zip(requested, out):
                self.feature_types[o] = types[f]
        self.request_types: dict[str, ValueType] = {}
        self.odfvs: list[OnDemandRead] = []
        wanted_by_view: dict[str, set[str]] = {}
        for ref in feature_refs:
            view_name, _, feature_name = feast_compat.parse_feature_ref(ref)
            wanted_by_view.setdefault(view_name, set()).add(feature_name)
        for odfv in odfvs:
            for source in odfv.source_request_sources.values():
                for f in source.schema:
                    self.request_types[f.name] = f.dtype.to_value_type()
            aliases = [
                (f"{p.name}__{f.name}", f.name)
                for p in odfv.source_feature_view_projections.values()
                for f in p.features
            ]
            self.odfvs.append(
                OnDemandRead(
                    odfv,
                    _hidden_columns(odfv, odfvs, feature_refs),
                    frozenset(wanted_by_view.get(odfv.projection.name_to_use(), ())),
                    {f.name: f.dtype.to_value_type() for f in odfv.schema},
                    aliases,
                )
            )
        self.request_fields = frozenset(request_fields)
        # Features read only as inputs of on-demand views are dropped from the response.
        self.drops_columns = any(o not in requested_names for v in self.views for o in v.out_names)

    @classmethod
    def compile(cls, ctx: tuple, full_feature_names: bool, include_metadata: bool, prefix: str) -> ReadPlan | None:
        """The plan of a resolved request, or None when only Feast's own path reproduces it exactly."""
        feature_refs, odfvs, _, entity_type_map, join_keys_set, grouped_refs, _, request_fields, entityless = ctx
        if entityless or include_metadata or (odfvs and full_feature_names):
            return None
        for table, requested in grouped_refs:
            proj = table.projection
            if (
                proj.join_key_map
                or proj.name_alias
                or getattr(proj, "version_tag", None) is not None
                or (getattr(table, "current_version_number", None) or 0) > 0
            ):
                return None
            types = {f.name: f.dtype.to_value_type() for f in table.features}
            if any(_decoder(types.get(f, ValueType.UNKNOWN)) is None for f in requested):
                return None
            if any(entity_type_map.get(k) not in ID_TYPES for k in table.join_keys):
                return None
        for odfv in odfvs:
            if (
                odfv.mode != "python"
                or odfv.aggregations
                or odfv.write_to_online_store
                or getattr(odfv.projection, "name_alias", None)
            ):
                return None
            for source in odfv.source_request_sources.values():
                if any(f.dtype.to_value_type() not in REQUEST_TYPES for f in source.schema):
                    return None
        return cls(ctx, full_feature_names, prefix)

    # ------------------------------------------------------------------ requests

    def bind(self, entity_rows: Any) -> BoundRequest:
        """Validate ``entity_rows`` (a list of dicts or a dict of lists) and build the reads.
        Raises ``BadRequestError`` naming the field for anything Feast would mis-serve."""
        columns = columnar(entity_rows)
        n = row_count(columns)
        for name in self.join_key_types:
            if name not in columns and any(name in v.join_keys for v in self.views):
                unknown = sorted(set(columns) - set(self.join_key_types) - self.request_fields)
                hint = f" (not join keys or request fields here: {', '.join(unknown)})" if unknown else ""
                raise BadRequestError(f"entities: the join key {name} is missing{hint}")
        missing = sorted(self.request_fields - set(columns))
        if missing:
            raise BadRequestError(
                f"entities: the request field(s) {', '.join(missing)} are missing (the on-demand features need them)"
            )
        ids = {
            name: checked_ids(name, columns[name], self.join_key_types[name])
            for name in self.join_key_types
            if name in columns
        }
        requests = {
            name: checked_request_values(name, columns[name], self.request_types.get(name))
            for name in self.request_fields
        }
        return BoundRequest(self, n, ids, requests, [k for k in columns if k in ids])


def _hidden_columns(odfv: Any, odfvs: Sequence[Any], feature_refs: Sequence[str]) -> frozenset[str]:
    """The response columns an on-demand view's function must not see: features of views it
    does not declare as sources (Feast's rule, feast#6158)."""
    declared = {p.name for p in odfv.source_feature_view_projections.values()}
    odfv_names = {(o.projection.name_alias if o.projection else None) or o.name for o in odfvs}
    hidden: set[str] = set()
    for ref in feature_refs:
        view_name, _, feature_name = feast_compat.parse_feature_ref(ref)
        if view_name in odfv_names:
            continue
        if view_name not in declared:
            hidden.update((feature_name, f"{view_name}__{feature_name}"))
    for other in odfvs:
        for projection in other.source_feature_view_projections.values():
            if projection.name in declared:
                continue
            for feature in projection.features:
                hidden.update((feature.name, f"{projection.name}__{feature.name}"))
    return frozenset(hidden)


class ReadPlans:
    """Compiled plans per (features or service name, project, full names), valid while the
    registry Feast serves from is the one they were compiled against."""

    def __init__(self) -> None:
        self._plans: dict[tuple, tuple[Any, ReadPlan | None]] = {}
        self._lock = threading.Lock()

    def plan(
        self,
        registry: Any,
        project: str,
        features: Sequence[str] | FeatureService,
        full_feature_names: bool,
        include_metadata: bool,
        prefix: str,
    ) -> ReadPlan | None:
        """The plan for ``features``, or None when Feast's own path must serve it. Raises what
        Feast raises for unknown views, features and services and for name collisions."""
        if isinstance(features, FeatureService):
            if getattr(features, "precompute_online", False):
                return None
            features_key: tuple = ("__fs__", features.name)
        else:
            if isinstance(features, str) or not isinstance(features, Sequence):
                raise BadRequestError("features: expected a list of feature references (view:feature)")
            for i, ref in enumerate(features):
                if not isinstance(ref, str) or ":" not in ref:
                    raise BadRequestError(f"features[{i}]: {ref!r} is not a feature reference (view:feature)")
            if not features:
                raise BadRequestError("features: give at least one feature reference, or a feature service")
            features_key = tuple(features)
        key = (features_key, project, full_feature_names, include_metadata, prefix)
        stamp = getattr(registry, "cached_registry_proto_created", None)
        is_valid = getattr(registry, "is_cache_valid", None)
        hit = self._plans.get(key)
        if hit is not None and stamp is not None and hit[0] == stamp and callable(is_valid) and is_valid():
            return hit[1]
        ctx = feast_compat.cached_request_context(registry, project, features, full_feature_names)
        compiled = ReadPlan.compile(ctx, full_feature_names, include_metadata, prefix)
        with self._lock:
            if len(self._plans) >= _MAX_PLANS:
                self._plans.clear()
            self._plans[key] = (getattr(registry, "cached_registry_proto_created", None), compiled)
        return compiled
