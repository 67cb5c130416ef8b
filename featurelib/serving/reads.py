"""One request of a compiled plan (``plan.ReadPlan.bind``): its Redis keys and ``HMGET`` commands,
then its replies decoded into a ``ReadResult``.

``BoundRequest`` builds each view's keys once per distinct entity (``contract.hash_keys``) and,
given the replies (``[_event_ts, *fields]`` per command) and the reader's clock, applies the
60 s future rule and the view TTL exactly as ``featurelib.online_store`` does, decodes every value
(a value that does not parse is null with ``NULL_VALUE``, logged and counted by ``observe``), runs
the on-demand views and returns Feast's columns, values, statuses and timestamps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.value_type import ValueType

from featurelib import contract
from featurelib.serving import observe

if TYPE_CHECKING:
    from featurelib.serving.plan import ReadPlan, ViewRead

PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = (
    FieldStatus.PRESENT,
    FieldStatus.NULL_VALUE,
    FieldStatus.NOT_FOUND,
    FieldStatus.OUTSIDE_MAX_AGE,
)


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
            view_replies = replies[offset : offset + len(keys)]
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
                statuses.extend(
                    [
                        [s if isinstance(s, int) else s[i] for s in (status_of[p] for p in positions)]
                        for i in range(width)
                    ]
                )
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
            names, values, statuses, event_us, value_types = (
                [seq[i] for i in keep] for seq in (names, values, statuses, event_us, value_types)
            )
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


def _decode_view(
    view: ViewRead, keys: Sequence[str], replies: Sequence[Sequence[bytes | None]], now_us: int, latest_us: int
) -> tuple[list[list], list[list[int] | int], list[int]]:
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
        return [
            None if v is None or v != v else (float(np.float32(v)) if kind == ValueType.FLOAT else float(v))
            for v in column
        ]
    if kind in (ValueType.INT64, ValueType.INT32):
        return [None if v is None else int(v) for v in column]
    if kind == ValueType.BOOL:
        return [None if v is None else bool(v) for v in column]
    return column
