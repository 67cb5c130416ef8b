"""Time units and conversions.

Every timestamp inside this project is an integer count of **microseconds since
the Unix epoch, UTC** (``int`` in Python, ``int64`` in numpy and Arrow). Parquet
columns carry the same value as ``timestamp[us, tz=UTC]``. Integer time keeps
window arithmetic exact: ``T - w`` never rounds.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

MICROSECOND = 1
MILLISECOND = 1_000
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

UTC = timezone.utc


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)


def to_us(value: datetime | pd.Timestamp | str | int) -> int:
    """Convert a datetime-like value to epoch microseconds (naive values are UTC; a pandas
    timestamp's nanoseconds are floored)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, datetime) and not isinstance(value, pd.Timestamp):  # exact, without pandas
        return (value - (_EPOCH_NAIVE if value.tzinfo is None else _EPOCH)) // _ONE_US
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(UTC)
    return int(ts.value // 1_000)


def from_us(us: int) -> datetime:
    """Epoch microseconds to an aware UTC ``datetime`` (exact, no float rounding)."""
    return _EPOCH + timedelta(microseconds=int(us))


def column_us(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column (any unit, any zone) or an integer column as int64 epoch microseconds
    (sub-microsecond digits truncated)."""
    if pa.types.is_timestamp(col.type):
        if col.type.unit != "us":
            col = pc.cast(col, pa.timestamp("us", tz=col.type.tz), safe=False)
        col = pc.cast(col, pa.int64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)


def now_us() -> int:
    """The current wall-clock time in epoch microseconds."""
    return to_us(datetime.now(UTC))


def format_us(us: int) -> str:
    """ISO-8601 UTC text with microseconds, e.g. ``2026-11-26T14:29:21.000123Z``."""
    return from_us(us).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_age(seconds: float | None) -> str:
    """An age in seconds, rounded for people: ``1.5d``, ``19.2h``, ``5.5m``, ``18.0s``; ``none``."""
    if seconds is None:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*")
_UNITS = {"s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}


def parse_duration(text: str) -> int:
    """``90s``, ``10m``, ``2h``, ``1.5d`` -> microseconds."""
    m = _DURATION.fullmatch(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (e.g. 10m, 2h, 1d)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_instant(text: str, now: int | None = None) -> int:
    """``now``, an age before now (``90s``, ``10m``, ``2h``, ``7d``) or an ISO-8601 time -> epoch µs."""
    now = now_us() if now is None else now
    text = text.strip()
    if text in ("now", "0"):
        return now
    if _DURATION.fullmatch(text):
        return now - parse_duration(text)
    try:
        return to_us(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a time: {text!r} (use now, an age like 7d or 2h, or ISO-8601)") from exc


def parse_range(text: str, now: int | None = None) -> tuple[int, int]:
    """``START..END`` (each as ``parse_instant``): ``7d..1d`` is from 7 days to 1 day ago."""
    if ".." not in text:
        raise ValueError(f"not a range: {text!r} (use START..END, e.g. 7d..1d or 2026-11-01..2026-11-08)")
    start, end = (parse_instant(part, now) for part in text.split("..", 1))
    if start >= end:
        raise ValueError(f"empty range: {text!r} (START must be before END)")
    return start, end
