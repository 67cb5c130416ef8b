"""Expectations next to the features, and the check behind ``feature_utils.py quality``.

A feature declares what valid data looks like in its field tags (see ``feature()`` in
``feature_views.py``): ``expect.min`` / ``expect.max`` (inclusive bounds), ``expect.in``
(the allowed values) and ``expect.max_null_share`` (0 to 1). ``quality`` checks the
offline rows of a time range (one DuckDB pass per view) and the online values of the most
recently active entities, and counts violations per feature with a few examples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from feast import FeatureStore, FeatureView

from featurelib import duck, tags
from featurelib.feature_data import existing_offline_path, online_values, recent_entities
from featurelib.report import Report
from featurelib.timeutil import format_us, now_us


@dataclass(frozen=True)
class Expectation:
    view: str
    feature: str
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    max_null_share: float | None = None
    kind: str = "float"  # float | int | bool | string | other: how values compare (NaN counts as null)

    @property
    def empty(self) -> bool:
        return self.min is None and self.max is None and self.allowed is None and self.max_null_share is None

    def describe(self) -> str:
        parts = []
        if self.min is not None and self.max is not None:
            parts.append(f"in [{_num(self.min)}, {_num(self.max)}]")
        elif self.min is not None:
            parts.append(f">= {_num(self.min)}")
        elif self.max is not None:
            parts.append(f"<= {_num(self.max)}")
        if self.allowed is not None:
            parts.append("in {" + ", ".join(self.allowed) + "}")
        if self.max_null_share is not None:
            parts.append(f"nulls <= {self.max_null_share:.0%}")
        return "; ".join(parts)

    @property
    def allowed_numbers(self) -> set[float] | None:
        """The allowed values as numbers, for numeric features (``1`` and ``1.0`` are one)."""
        if self.allowed is None or self.kind not in ("float", "int"):
            return None
        return {float(v) for v in self.allowed}

    def violates(self, value: Any) -> bool:
        """Whether one value breaks the bounds or the allowed set (nulls and NaN never do:
        they count against ``max_null_share``)."""
        if is_null(value) or isinstance(value, (list, tuple)):
            return False
        numbers = self.allowed_numbers
        if numbers is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            if float(value) not in numbers:
                return True
        elif self.allowed is not None and _text(value) not in self.allowed:
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return (self.min is not None and value < self.min) or (self.max is not None and value > self.max)


def is_null(value: Any) -> bool:
    """None, or a float NaN (a stream writer may write ``nan``; it is no value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _text(value: Any) -> str:
    """A value as written in an ``expect.in`` tag: ``true``/``false`` for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _kind(view: FeatureView, feature: str) -> str:
    name = next(f.dtype for f in view.features if f.name == feature).to_value_type().name
    return {"FLOAT": "float", "DOUBLE": "float", "INT32": "int", "INT64": "int", "BOOL": "bool",
            "STRING": "string"}.get(name, "other")


def expectations_of(view: FeatureView) -> list[Expectation]:
    out = []
    for f in view.features:
        e = Expectation(view=view.name, feature=f.name, kind=_kind(view, f.name), **tags.expectations(f.tags))
        if not e.empty:
            out.append(e)
    return out


@dataclass
class FeatureQuality:
    view: str
    feature: str
    source: str  # offline | online
    expectation: str
    rows: int
    nulls: int
    violations: int
    examples: list[str] = field(default_factory=list)
    null_share_exceeded: bool = False

    @property
    def violation_share(self) -> float:
        return self.violations / self.rows if self.rows else 0.0


@dataclass
class QualityReport(Report):
    start: str
    end: str
    max_violation_share: float
    results: list[FeatureQuality]

    def failed(self, r: FeatureQuality) -> bool:
        return r.null_share_exceeded or (r.violations > 0 and r.violation_share > self.max_violation_share)

    @property
    def ok(self) -> bool:
        return not any(self.failed(r) for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return super().to_dict() | {"results": [asdict(r) | {"failed": self.failed(r)} for r in self.results]}

    def render(self) -> str:
        lines = [f"Data quality: offline rows from {self.start} to {self.end}, and online values of recent entities"]
        for r in self.results:
            if not self.failed(r) and not r.violations:
                continue
            mark = "❌" if self.failed(r) else "⚠️ "
            nulls = f", nulls {r.nulls:,}/{r.rows:,}" + (" (too many)" if r.null_share_exceeded else "")
            lines.append(f"  {mark} {r.source:<7} {r.view}:{r.feature} expects {r.expectation}: "
                         f"{r.violations:,} of {r.rows:,} violate{nulls}")
            lines += [f"         e.g. {e}" for e in r.examples]
        checked = len(self.results)
        bad = sum(self.failed(r) for r in self.results)
        if not bad:
            lines.append(f"  ✅ {checked} feature checks passed")
        lines.append(f"Result: {'OK' if self.ok else 'FAILED'} ({bad} of {checked} checks failed)")
        return "\n".join(lines)


def _null_sql(col: str, e: Expectation) -> str:
    return f"({col} IS NULL OR isnan({col}))" if e.kind == "float" else f"{col} IS NULL"


def _violation_sql(col: str, e: Expectation) -> str | None:
    """SQL true for a non-null value that breaks ``e`` (NaN counts as null, not as a violation)."""
    terms = []
    if e.min is not None:
        terms.append(f"{col} < {e.min!r}")
    if e.max is not None:
        terms.append(f"{col} > {e.max!r}")
    if e.allowed_numbers is not None:
        terms.append(f"{col} NOT IN ({', '.join(repr(v) for v in sorted(e.allowed_numbers))})")
    elif e.allowed is not None:
        values = ", ".join("'" + v.replace("'", "''") + "'" for v in e.allowed)
        text = f"lower(CAST({col} AS VARCHAR))" if e.kind == "bool" else f"CAST({col} AS VARCHAR)"
        terms.append(f"{text} NOT IN ({values})")
    if not terms:
        return None
    return f"NOT {_null_sql(col, e)} AND (" + " OR ".join(f"({t})" for t in terms) + ")"


def check_offline(store: FeatureStore, view: FeatureView, start_us: int, end_us: int, examples: int = 3) -> list[FeatureQuality]:
    source = duck.parquet(existing_offline_path(store, view))
    key = view.join_keys[0]
    where = f"event_timestamp >= make_timestamptz({int(start_us)}) AND event_timestamp <= make_timestamptz({int(end_us)})"
    exps = expectations_of(view)
    selects = ["count(*)"]
    for e in exps:
        col = f'"{e.feature}"'
        cond = _violation_sql(col, e)
        selects.append(f"count(*) FILTER (WHERE {_null_sql(col, e)})")
        selects.append(f"count(*) FILTER (WHERE {cond})" if cond else "0")
    row = duck.one(f"SELECT {', '.join(selects)} FROM {source} WHERE {where}")
    rows = row[0]
    out = []
    for i, e in enumerate(exps):
        nulls, violations = row[1 + 2 * i], row[2 + 2 * i]
        found = []
        cond = _violation_sql(f'"{e.feature}"', e)
        if violations and cond:
            found = [f"{k} at {ts:%Y-%m-%d %H:%M:%S.%f} UTC: {v!r}" for k, ts, v in duck.rows(
                f'SELECT {key}, event_timestamp, "{e.feature}" FROM {source} '
                f"WHERE {where} AND ({cond}) ORDER BY event_timestamp LIMIT {int(examples)}")]
        exceeded = e.max_null_share is not None and rows > 0 and nulls / rows > e.max_null_share
        out.append(FeatureQuality(view.name, e.feature, "offline", e.describe(), rows, nulls, violations, found, exceeded))
    return out


def check_online(store: FeatureStore, view: FeatureView, sample: int, examples: int = 3) -> list[FeatureQuality]:
    ids = recent_entities(store, view, sample)
    present = [(i, r) for i, r in zip(ids, online_values(store, view, ids) if ids else []) if r["present"]]
    out = []
    for e in expectations_of(view):
        values = [(i, r["values"].get(e.feature)) for i, r in present]
        nulls = sum(is_null(v) for _, v in values)
        bad = [(i, v) for i, v in values if e.violates(v)]
        exceeded = e.max_null_share is not None and present and nulls / len(present) > e.max_null_share
        out.append(FeatureQuality(view.name, e.feature, "online", e.describe(), len(present), nulls, len(bad),
                                  [f"{i}: {v!r}" for i, v in bad[:examples]], bool(exceeded)))
    return out


def quality(store: FeatureStore, start_us: int, end_us: int | None = None, *, sample: int = 200,
            max_violation_share: float = 0.0, views: list[str] | None = None, online: bool = True) -> QualityReport:
    end_us = end_us if end_us is not None else now_us()
    results = []
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if views and view.name not in views:
            continue
        results += check_offline(store, view, start_us, end_us)
        if online:
            results += check_online(store, view, sample)
    return QualityReport(format_us(start_us), format_us(end_us), max_violation_share, results)
