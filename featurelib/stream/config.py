"""The stream processor's settings: which streams, which clock, lateness, batching, leases,
reconnection and garbage collection (``python -m featurelib.stream run`` sets them from options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from featurelib import paths
from featurelib.stream.events import STREAMS


@dataclass
class ProcessorConfig:
    repo: Path = paths.REPO_ROOT
    group: str = "featurelib"
    consumer: str = "processor-1"
    clock: str = "wall"
    """``wall``: the clock is the wall clock (live streams); ``event``: the highest event time
    seen (replays of history as fast as possible)."""
    lateness_s: float = 10.0
    timer_ms: int = 20
    """Wall clock: window exits due are applied at most this often (each row still carries the
    exact instant of its change point); bounds the work of an idle processor."""
    read_count: int = 100_000
    max_block_ms: int = 200
    flush_rows: int = 100_000
    flush_seconds: float = 2.0
    streams: dict[str, str] = field(default_factory=lambda: dict(STREAMS))
    partitions: int = 1
    """1: the streams of ``streams`` as they are. N > 1: their partitioned families
    (``featurelib.stream.partitions``), shared with the other processors of the group."""
    standby: bool = False
    """When another processor holds a stream's lease: wait and take over when it stops (else refuse)."""
    lease_ttl_s: float = 10.0
    """A processor that stops renewing its lease loses it after this long (a standby takes over)."""
    reconnect_timeout_s: float | None = None
    """Give up when Redis stays unreachable this long (None: never)."""
    background_writes_from: int = 1_000
    """Steps of at least this many events write on the I/O thread, overlapping the next step."""
    trim_every_s: float = 1.0
    """How often the processor looks for events that can no longer matter (forgotten once they are
    an eighth of a stream's buffer: ``StreamCore.trim``); on a timer, so the events a restart
    loaded for safety go while the processor is still idle."""
    gc_every_s: float = 1.0
    """While the processor runs, Python's cyclic collector runs this often over the objects made
    since its last run, not on allocation counts (``featurelib.stream.collector``): a second of
    objects takes a few milliseconds to walk ..."""
    gc_backlog_every_s: float = 30.0
    """... this often while it works through a backlog (a large read stays alive for its step) ..."""
    gc_full_every_s: float = 600.0
    """... and this often over every object."""
