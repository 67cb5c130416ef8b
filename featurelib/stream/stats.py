"""What the stream processor counts and measures while it runs, and the one-line summary it logs."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from featurelib.timeutil import now_us


@dataclass
class Stats:
    events: int = 0
    accepted: int = 0
    too_late: int = 0
    duplicates: int = 0
    invalid: int = 0
    rows_written: int = 0
    rows_refused: int = 0  # refused by the write script (stamped too far ahead of Redis's clock)
    reconnects: int = 0
    redis_lost: list[str] = field(default_factory=list)  # what Redis lost while this processor was away
    steps: int = 0
    started: float = field(default_factory=time.monotonic)
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=100_000))
    step_ms: deque = field(default_factory=lambda: deque(maxlen=100_000))
    phase_ms: dict = field(default_factory=dict)  # phase -> total milliseconds

    def phase(self, name: str, started: float) -> float:
        """Add the time since ``started`` (``time.perf_counter()``) to phase ``name``; returns now."""
        now = time.perf_counter()
        self.phase_ms[name] = self.phase_ms.get(name, 0.0) + (now - started) * 1000
        return now

    def wrote(self, results: list[int], arrived_us: np.ndarray | None) -> int:
        """Count the write script's results (1 written, 0 a newer row kept, negative refused) and
        the latency of the events whose rows they were (arrival in µs); returns the refused."""
        refused = sum(1 for r in results if r < 0)
        self.rows_written += len(results) - refused
        self.rows_refused += refused
        if arrived_us is not None and len(arrived_us):
            self.latencies_ms.extend(((now_us() - arrived_us) / 1000).tolist())
        return refused

    def percentile(self, q: float, samples: deque | None = None) -> float | None:
        samples = self.latencies_ms if samples is None else samples
        return float(np.percentile(np.fromiter(samples, float), q)) if samples else None

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        p50, p99 = self.percentile(50), self.percentile(99)
        lat = f", event-to-servable p50 {p50:.1f} ms p99 {p99:.1f} ms" if p50 is not None else ""
        if self.step_ms:
            lat += f"; {self.steps:,} steps, p50 {self.percentile(50, self.step_ms):.1f} ms p99 {self.percentile(99, self.step_ms):.1f} ms"
        extra = f", {self.rows_refused:,} refused" if self.rows_refused else ""
        extra += f"; reconnected {self.reconnects}x" if self.reconnects else ""
        return (f"{self.events:,} events ({self.events / elapsed:,.0f}/s): {self.accepted:,} applied, {self.too_late:,} too late, "
                f"{self.duplicates:,} duplicates, {self.invalid:,} invalid; {self.rows_written:,} rows written{extra}{lat}")
