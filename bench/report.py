"""What the benchmark scripts share: timing a call (``timed``, ``percentiles``) and where a
script leaves its figures: ``<out>/<name>.json`` (everything measured) and ``<out>/<name>.md``
(the table people read), the table also printed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np


def save(out: Path, name: str, results: Any, table: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    (out / f"{name}.md").write_text("\n".join(table) + "\n")
    click.echo("\n".join(table))


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Seconds of each of ``n`` calls of ``fn``, after up to 50 untimed warm-up calls."""
    for _ in range(min(50, n)):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def percentiles(seconds: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50 and p99 of durations in seconds, in ms."""
    a = np.asarray(seconds, dtype=float) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}
