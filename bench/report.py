"""What the benchmark scripts share: timing a call (``timed``, ``percentiles``), waiting for a
condition (``wait_until``, ``consumed``) and where a script leaves its figures:
``<out>/<name>.json`` (everything measured) and ``<out>/<name>.md`` (the table people read),
the table also printed."""

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


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    """Poll ``condition`` until it holds; a one-line error naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise click.ClickException(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


def consumed(client: Any, keys: Sequence[str], group: str) -> bool:
    """Whether ``group`` has been delivered every entry of every stream in ``keys`` and has
    acknowledged them all (the processors landed them); False while a stream does not exist."""
    for key in keys:
        if not client.exists(key):
            return False
        info = {(g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g
                for g in client.xinfo_groups(key)}.get(group)
        if info is None or info["pending"] or info["last-delivered-id"] != client.xinfo_stream(key)["last-generated-id"]:
            return False
    return True
