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

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from feast.feature_service import FeatureService
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.value_type import ValueType

from featurelib import contract, feast_compat
from featurelib.errors import BadRequestError
from featurelib.serving import observe
from featurelib.serving.request_checks import (
    ID_TYPES,
    REQUEST_TYPES,
    checked_ids,
    checked_request_values,
    columnar,
    row_count,
)

PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = (FieldStatus.PRESENT, FieldStatus.NULL_VALUE, FieldStatus.NOT_FOUND,
                                                   FieldStatus.OUTSIDE_MAX_AGE)
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
        return lambda raw: contract.parse_bool(raw.decode())
    if value_type == ValueType.BYTES:
        return bytes
    if value_type in (ValueType.INT32_LIST, ValueType.INT64_LIST, ValueType.DOUBLE_LIST, ValueType.BOOL_LIST,
                      ValueType.STRING_LIST):
        parse = contract.codec(value_type).from_text
        return lambda raw: parse(raw.decode())
    if value_type == ValueType.FLOAT_LIST:
        parse = contract.codec(value_type).from_text
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


@dataclass
class ReadResult:
    """A response in columns: ``names[i]`` has ``values[i]`` (Python values as Feast's ``to_dict``
    gives them), ``statuses[i]`` (``FieldStatus`` per row, None: all PRESENT) and ``event_us[i]``
    (event timestamps in µs per row, None: all 0), ``value_types[i]`` for building protos."""

    names: list[str]
    values: list[list]
    statuses: list[list[int] | None]
    event_us: list[list[int] | None]
    value_types: list[ValueType]
    feature_types: dict[str, ValueType]


class ReadPlan:
    """A feature list or service, resolved and compiled (see module docstring)."""

    def __init__(self, ctx: tuple, full_feature_names: bool, prefix: str):
        (feature_refs, odfvs, _, entity_type_map, join_keys_set, grouped_refs, requested_names, request_fields,
         _) = ctx
        self.prefix = prefix
        self.requested_names = requested_names
        self.join_key_types: dict[str, ValueType] = {k: entity_type_map.get(k, ValueType.UNKNOWN)
                                                     for k in join_keys_set if isinstance(k, str)}
        self.views: list[ViewRead] = []
        self.feature_types: dict[str, ValueType] = {}
        for table, requested in grouped_refs:
            types = {f.name: f.dtype.to_value_type() for f in table.features}
            name = table.projection.name_to_use()
            out = [f"{name}__{f}" if full_feature_names else f for f in requested]
            join_keys = tuple(table.join_keys)
            view = ViewRead(table.name, join_keys, list(requested), [_decoder(types[f]) for f in requested], out,
                            int(table.ttl.total_seconds() * 1_000_000) if table.ttl else 0,
                            [types[f] for f in requested])
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
            aliases = [(f"{p.name}__{f.name}", f.name) for p in odfv.source_feature_view_projections.values()
                       for f in p.features]
            self.odfvs.append(OnDemandRead(odfv, _hidden_columns(odfv, odfvs, feature_refs),
                                           frozenset(wanted_by_view.get(odfv.projection.name_to_use(), ())),
                                           {f.name: f.dtype.to_value_type() for f in odfv.schema}, aliases))
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
            if (proj.join_key_map or proj.name_alias or getattr(proj, "version_tag", None) is not None
                    or (getattr(table, "current_version_number", None) or 0) > 0):
                return None
            types = {f.name: f.dtype.to_value_type() for f in table.features}
            if any(_decoder(types.get(f, ValueType.UNKNOWN)) is None for f in requested):
                return None
            if any(entity_type_map.get(k) not in ID_TYPES for k in table.join_keys):
                return None
        for odfv in odfvs:
            if (odfv.mode != "python" or odfv.aggregations or odfv.write_to_online_store
                    or getattr(odfv.projection, "name_alias", None)):
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
            raise BadRequestError(f"entities: the request field(s) {', '.join(missing)} are missing "
                                  f"(the on-demand features need them)")
        ids = {name: checked_ids(name, columns[name], self.join_key_types[name])
               for name in self.join_key_types if name in columns}
        requests = {name: checked_request_values(name, columns[name], self.request_types.get(name))
                    for name in self.request_fields}
        return BoundRequest(self, n, ids, requests, [k for k in columns if k in ids])


@dataclass
class BoundRequest:
    """A validated request of a plan: its commands to send, then ``result(replies)``."""

    plan: ReadPlan
    rows: int
    ids: dict[str, list]
    requests: dict[str, list]
    id_order: list[str]
    reads: list[tuple[list[str], list[int]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        prefix = self.plan.prefix
        for view in self.plan.views:
            row_keys = contract.hash_keys(prefix, view.join_keys, [self.ids[k] for k in view.join_keys], view.name)
            first: dict[str, int] = {}
            keys: list[str] = []
            positions = []
            for key in row_keys:
                at = first.get(key)
                if at is None:
                    at = first[key] = len(keys)
                    keys.append(key)
                positions.append(at)
            self.reads.append((keys, positions))

    def commands(self) -> list[tuple[str, list[str]]]:
        """``(key, HMGET fields)`` in reply order: every view's distinct entities."""
        return [(key, view.hmget_args) for view, (keys, _) in zip(self.plan.views, self.reads) for key in keys]

    def result(self, replies: Sequence[Sequence[bytes | None]], now_us: int) -> ReadResult:
        """Decode ``replies`` (one per command, ``[_event_ts, *fields]``) at the reader's clock
        ``now_us`` (µs since the epoch) and run the on-demand views."""
        plan = self.plan
        names: list[str] = list(self.id_order)
        values: list[list] = [self.ids[k] for k in self.id_order]
        statuses: list[list[int] | None] = [None] * len(names)
        event_us: list[list[int] | None] = [None] * len(names)
        value_types = [plan.join_key_types[k] for k in self.id_order]
        latest_us = now_us + contract.MAX_AHEAD_US
        offset = 0
        by_name: dict[str, list] = {}
        for view, (keys, positions) in zip(plan.views, self.reads):
            view_replies = replies[offset: offset + len(keys)]
            offset += len(keys)
            width = len(view.fields)
            decoded, status_of, ts_of = _decode_view(view, keys, view_replies, now_us, latest_us)
            if len(positions) == 1:
                columns = [[v] for v in decoded[positions[0]]]
            else:
                columns = [list(c) for c in zip(*[decoded[p] for p in positions])]
            names.extend(view.out_names)
            values.extend(columns)
            by_name.update(zip(view.out_names, columns))
            if all(s == PRESENT for s in status_of):
                statuses.extend([None] * width)
            elif all(type(s) is int for s in status_of):  # one list for every column of the view
                statuses.extend([[status_of[p] for p in positions]] * width)
            else:
                statuses.extend([[s if isinstance(s, int) else s[i] for s in (status_of[p] for p in positions)]
                                 for i in range(width)])
            event_us.extend([[ts_of[p] for p in positions]] * width)
            value_types.extend(view.value_types)
        for name, column, kind in self._on_demand(by_name):
            names.append(name)
            values.append(column)
            statuses.append(None)
            event_us.append(None)
            value_types.append(kind)
        if plan.drops_columns:
            keep = [i for i, name in enumerate(names) if name in plan.requested_names or name in self.ids]
            names, values, statuses, event_us, value_types = ([seq[i] for i in keep] for seq in
                                                              (names, values, statuses, event_us, value_types))
        return ReadResult(names, values, statuses, event_us, value_types, plan.feature_types)

    def _on_demand(self, by_name: dict[str, list]) -> Iterator[tuple[str, list, ValueType]]:
        """``(name, column, type)`` of every wanted output of the plan's on-demand views, run on
        the request's ids, request fields and the features read (``by_name``)."""
        for odfv in self.plan.odfvs:
            inputs = {k: self.ids[k] for k in self.id_order}
            inputs.update(self.requests)
            inputs.update(by_name)
            for hidden in odfv.hidden:
                inputs.pop(hidden, None)
            for name, column in odfv.transform(inputs).items():
                if name in odfv.wanted:
                    kind = odfv.types.get(name, ValueType.UNKNOWN)
                    yield name, _normalized(column, kind), kind


def _decode_view(view: ViewRead, keys: Sequence[str], replies: Sequence[Sequence[bytes | None]], now_us: int,
                 latest_us: int) -> tuple[list[list], list[list[int] | int], list[int]]:
    """One view's replies (``[_event_ts, *fields]`` per distinct entity) decoded at ``now_us``:
    the values of each entity, its status (one, or one per field when some field does not
    parse) and its event time (0 when not found). A row stamped after ``latest_us`` is not found."""
    width = len(view.fields)
    decoded: list[list] = []
    status_of: list[list[int] | int] = []
    ts_of: list[int] = []
    for key, reply in zip(keys, replies):
        raw_ts = reply[0]
        event = int(raw_ts) if raw_ts is not None else None
        if event is None or event > latest_us:
            decoded.append([None] * width)
            status_of.append(NOT_FOUND)
            ts_of.append(0)
            continue
        ts_of.append(event)
        if view.ttl_us and now_us - event > view.ttl_us:
            decoded.append([None] * width)
            status_of.append(OUTSIDE_MAX_AGE)
            continue
        try:
            row = [None if raw is None else decode(raw) for raw, decode in zip(reply[1:], view.decoders)]
            bad: list[int] | int = PRESENT
        except (ValueError, TypeError, OverflowError, UnicodeDecodeError):
            row, bad = _tolerant_row(view, key, reply)
        decoded.append(row)
        status_of.append(bad)
    return decoded, status_of, ts_of


def _tolerant_row(view: ViewRead, key: str, reply: Sequence[bytes | None]) -> tuple[list, list[int]]:
    """A row with a stored value that does not parse: that value null with ``NULL_VALUE`` (logged
    and counted), every other value decoded."""
    row, statuses = [], [PRESENT] * len(view.fields)
    for i, (raw, decode) in enumerate(zip(reply[1:], view.decoders)):
        if raw is None:
            row.append(None)
            continue
        try:
            row.append(decode(raw))
        except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
            row.append(None)
            statuses[i] = NULL_VALUE
            observe.decode_error(view.name, view.fields[i], key, raw, exc)
    return row, statuses


def _normalized(column: Any, kind: ValueType) -> list:
    """An on-demand output column as Feast's proto round trip gives it back: floats as floats, and
    NaN as null (Feast's ``python_values_to_proto_values`` writes a NaN output as a null value)."""
    column = list(column) if not isinstance(column, list) else column
    if kind in (ValueType.DOUBLE, ValueType.FLOAT):
        return [None if v is None or v != v else (float(np.float32(v)) if kind == ValueType.FLOAT else float(v))
                for v in column]
    if kind in (ValueType.INT64, ValueType.INT32):
        return [None if v is None else int(v) for v in column]
    if kind == ValueType.BOOL:
        return [None if v is None else bool(v) for v in column]
    return column


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

    def plan(self, registry: Any, project: str, features: Sequence[str] | FeatureService, full_feature_names: bool,
             include_metadata: bool, prefix: str) -> ReadPlan | None:
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


def finite_or_name(x: float) -> float | str:
    """A float as Feast's JSON gives it: finite as is, else ``NaN``, ``Infinity``, ``-Infinity``."""
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
