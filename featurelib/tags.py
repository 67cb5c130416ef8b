"""The tag protocol: what this repository writes into Feast's tags (and Parquet metadata) and
the checks, docs and specs read back. Every tag name is written and read through this module.

Feature (field) tags, written by ``feature_views.feature``:

* ``unit``, ``window``: the feature's unit and window (also in its description);
* ``expect.min``, ``expect.max``: inclusive bounds of every non-null value;
* ``expect.in``: the only values allowed, comma separated (booleans as ``true``/``false``);
* ``expect.max_null_share``: the largest share of nulls allowed (0 to 1);
* ``monitor.drift: skip``: left out of ``feature_utils.py drift``.

Feature view tags: ``freshness_max_age`` (a duration, ``10m``): how old the newest row may be.

On-demand views: Feast compares declared output fields with inferred ones using full ``Field``
equality, so output fields cannot carry tags; their docs live in the view's tags as
``feature.<name>.description``, ``feature.<name>.unit`` and ``feature.<name>.window``.

Feature Parquet files: the schema metadata ``featurelib.max_event_us`` holds the newest raw event
time (integer µs) the batch job computed them from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

UNIT, WINDOW = "unit", "window"
EXPECT_MIN, EXPECT_MAX, EXPECT_IN, EXPECT_MAX_NULL_SHARE = "expect.min", "expect.max", "expect.in", "expect.max_null_share"
DRIFT, SKIP = "monitor.drift", "skip"
FRESHNESS_MAX_AGE = "freshness_max_age"
MAX_EVENT_US = "featurelib.max_event_us"
"""Parquet schema metadata key of the feature files (bytes in Arrow: ``MAX_EVENT_US.encode()``)."""
HIDDEN_PREFIXES = ("feature.", "expect.", "monitor.")
"""Tags the generated docs show in their own columns, not in the tag list."""


def field_tags(unit: str, window: str, *, min: Any = None, max: Any = None,  # noqa: A002
               allowed: Iterable[Any] | None = None, max_null_share: float | None = None,
               drift: bool = True) -> dict[str, str]:
    """The tags of a feature with its unit, window and expectations."""
    tags = {UNIT: unit, WINDOW: window}
    if min is not None:
        tags[EXPECT_MIN] = str(min)
    if max is not None:
        tags[EXPECT_MAX] = str(max)
    if allowed is not None:
        tags[EXPECT_IN] = ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in allowed)
    if max_null_share is not None:
        tags[EXPECT_MAX_NULL_SHARE] = str(max_null_share)
    if not drift:
        tags[DRIFT] = SKIP
    return tags


def expectations(tags: Mapping[str, str]) -> dict[str, Any]:
    """``min``, ``max`` (floats), ``allowed`` (a tuple of texts) and ``max_null_share`` of a
    feature's tags, each ``None`` when not declared."""
    return {
        "min": float(tags[EXPECT_MIN]) if EXPECT_MIN in tags else None,
        "max": float(tags[EXPECT_MAX]) if EXPECT_MAX in tags else None,
        "allowed": tuple(tags[EXPECT_IN].split(",")) if EXPECT_IN in tags else None,
        "max_null_share": float(tags[EXPECT_MAX_NULL_SHARE]) if EXPECT_MAX_NULL_SHARE in tags else None,
    }


def drift_compared(tags: Mapping[str, str]) -> bool:
    """Whether ``feature_utils.py drift`` compares the feature (not tagged ``monitor.drift: skip``)."""
    return tags.get(DRIFT) != SKIP


def output_doc_tags(name: str, description: str, unit: str, window: str) -> dict[str, str]:
    """The view tags documenting one output of an on-demand view."""
    return {f"feature.{name}.description": f"{description} Unit: {unit}. Window: {window}.",
            f"feature.{name}.unit": unit, f"feature.{name}.window": window}


def output_doc(view_tags: Mapping[str, str], field: Any) -> dict[str, str]:
    """``description``, ``unit`` and ``window`` of an on-demand view's output ``field`` (from the
    view's tags, falling back on the field's own)."""
    prefix = f"feature.{field.name}."
    return {"description": view_tags.get(prefix + "description", field.description),
            "unit": view_tags.get(prefix + "unit", field.tags.get(UNIT, "")),
            "window": view_tags.get(prefix + "window", field.tags.get(WINDOW, ""))}
