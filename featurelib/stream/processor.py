"""The reference stream processor: Redis Streams in, feature rows to Redis and events to Parquet.

Each iteration reads from ``events:transactions`` and ``events:clickstream`` through a consumer
group, decodes the entries, lets ``StreamCore`` compute the changed rows, writes the newest row
of every changed (entity, feature view) through the stream contract, and lands the events as
Parquet. Entries are acknowledged only after their rows are written and their events are on
disk, so a processor that stops or crashes loses nothing: on restart it rebuilds its window
state from the landed Parquet, reads the entries it had not acknowledged, and processes them
again, which changes nothing (rows are rewritten with the same timestamps, event ids count once).

**Nothing in an entry can stop it.** Entries that break the raw-event schema
(``featurelib.stream.events``) are quarantined with their bytes and acknowledged.

**Redis may go away.** When a command fails because Redis is unreachable (restarted, failed
over, the network), the processor drops its in-memory state, waits for Redis with backoff, and
starts over as after a restart: everything not acknowledged is read again. With an append-only
file (``appendonly yes``, ``appendfsync everysec``) nothing is lost. Without persistence a
restarted Redis has lost the backlog and the online store; the processor reports it (its group is
gone, or the stream ends before what it landed); ``feature_utils.py restore-online`` rebuilds it.

**One processor per stream** (``featurelib.stream.lease``): window state is per entity, and Redis
consumer groups do not route by key, so a second processor for the same stream and group refuses
to start, or waits as a standby. To scale out, producers partition the streams by entity and
processors share the partitions (``featurelib.stream.partitioned``).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from featurelib import contract, paths
from featurelib.raw_reader import RawEvents
from featurelib.redis_connection import make_client
from featurelib.repo import load_store, quiet, redis_address
from featurelib.stream import collector
from featurelib.stream.config import ProcessorConfig
from featurelib.stream.core import StreamCore
from featurelib.stream.events import decode
from featurelib.stream.groups import durability_warning, ensure_groups
from featurelib.stream.landing import Landing
from featurelib.stream.lease import Leases
from featurelib.stream.redis_link import connection_lost, fail_fast, raw_streams, wait_for_redis
from featurelib.stream.sink import RowWriter
from featurelib.stream.stats import Stats
from featurelib.timeutil import SECOND, now_us


class StreamProcessor:
    def __init__(self, cfg: ProcessorConfig, log: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.log = log or (lambda _: None)
        with quiet():
            self.store = load_store(cfg.repo)
        # Its own connection, answering XREADGROUP unparsed: ``decode`` turns flat field lists into columns.
        self.redis = make_client(self.store.config.online_store)
        self.redis.set_response_callback("XREADGROUP", raw_streams)
        self.writer = RowWriter(self.store)
        for client in (self.redis, self.writer.client):
            fail_fast(client)
        self.address = redis_address(self.store)
        self.leases = Leases(self.redis, cfg.group, list(cfg.streams.values()), cfg.consumer, cfg.lease_ttl_s, self.log)
        self.stats = Stats()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-io")
        self._lander = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-land")
        self._stop = False
        self._reset()

    @property
    def streams(self) -> dict[str, str]:
        """The streams consumed: name (the kind of events; a partitioned processor's lanes) -> key."""
        return self.cfg.streams

    def _reset(self) -> None:
        """The in-memory state of a start: empty windows, nothing pending, every entry not
        acknowledged to be read again (after a restart or a lost connection)."""
        self.core = StreamCore(int(self.cfg.lateness_s * SECOND), kinds=tuple(self.cfg.streams))
        self.landing = Landing(paths.raw_dir(self.cfg.repo), paths.data_dir(self.cfg.repo) / "quarantine",
                               self.cfg.flush_rows, self.cfg.flush_seconds)
        # Entries delivered but not acknowledged come first (pending until their events are landed).
        self._pending_cursor: dict[str, bytes | str] | None = {k: "0" for k in self.cfg.streams.values()}
        self._unread = {k: ">" for k in self.cfg.streams.values()}  # XREADGROUP: entries never delivered
        self._read_ahead: Future | None = None
        self._io_jobs: deque[Future] = deque()
        self._land_jobs: deque[Future] = deque()
        self._io_error: Exception | None = None
        self._last_step = 0.0
        self._last_trim = 0.0
        self._arrival_floor: dict[str, int] = {}  # wall clock: no unread entry arrived earlier

    # ------------------------------------------------------------------ setup

    def ensure_groups(self) -> None:
        """Create the consumer groups, report what Redis lost of what was landed, take over
        entries left pending under other consumer names (``featurelib.stream.groups``)."""
        for message in ensure_groups(self.redis, self.streams, self.cfg.group, self.cfg.consumer,
                                     self.landing.last_landed_id, self.address):
            self.stats.redis_lost.append(message)
            self.log(f"ERROR: {message}")

    def bootstrap(self) -> int:
        """Rebuild window state from the events already landed (generated and streamed).

        Each stream's clock restarts at its newest landed event, so the first step writes
        every window change that fell while the processor was away (on the wall clock, up
        to now). Rows rewritten with their own timestamps are unchanged."""
        loaded = 0
        for kind, buffer in self.core.buffers.items():
            raw = RawEvents.scan(paths.raw_dir(self.cfg.repo), kind)  # invalid events left out, as the batch job does
            if not raw.files:
                continue
            clock = raw.newest_us()
            # An hour more than the windows need: entries read after a restart may trail it.
            since = clock - self.core.lateness_us - buffer.horizon_us - 3600 * SECOND
            table = raw.after(since)
            buffer.add(table)
            loaded += table.num_rows
            self.core.clock[kind] = max(self.core.clock[kind], clock)
            if self.cfg.clock == "wall":  # live: the window state is computed before the first event
                self.core.load(kind)
        return loaded

    # ------------------------------------------------------------------ loop

    def _block_ms(self) -> int:
        """How long a read may wait: until the next window change is due (wall clock)."""
        if self.cfg.clock != "wall":
            return self.cfg.max_block_ms
        nxt = self.core.next_change_point()
        if nxt is None:
            return self.cfg.max_block_ms
        until_due = (nxt - now_us()) / 1000
        until_allowed = self.cfg.timer_ms - (time.monotonic() - self._last_step) * 1000
        return int(min(max(until_due, until_allowed, 1), self.cfg.max_block_ms))

    def _xreadgroup(self, streams: dict, block_ms: int | None) -> tuple[int, list]:
        read_at = now_us()
        return read_at, self.redis.xreadgroup(self.cfg.group, self.cfg.consumer, streams, count=self.cfg.read_count,
                                              block=block_ms)

    def read(self, block_ms: int) -> dict[str, list]:
        """The next entries of every stream, by kind.

        When a read returns a full batch of some stream (a backlog), the next read is sent at
        once, without blocking, on a background thread: Redis prepares it while this step is
        computed. Entries read ahead are delivered to this consumer and stay pending until
        landed, like any other; if the processor stops first, they are read again on restart."""
        pending = self._pending_cursor
        if self._read_ahead is not None:
            read_at, reply = self._read_ahead.result()
            self._read_ahead = None
            if not reply:
                read_at, reply = self._xreadgroup(self._unread, block_ms)
        else:
            streams = pending if pending is not None else self._unread
            read_at, reply = self._xreadgroup(streams, None if pending is not None else block_ms)
        by_key = {(k.decode() if isinstance(k, bytes) else k): entries for k, entries in reply}
        if pending is None and any(len(entries) >= self.cfg.read_count for entries in by_key.values()):
            self._read_ahead = self._io.submit(self._xreadgroup, self._unread, None)
        if pending is not None:
            for key, entries in by_key.items():
                if entries:
                    pending[key] = entries[-1][0]
            if not any(by_key.values()):
                self._pending_cursor = None  # everything delivered before the restart is handled
        kinds = {v: k for k, v in self.cfg.streams.items()}
        out = {kinds[k]: entries for k, entries in by_key.items() if entries}
        if pending is None:
            for kind in self.cfg.streams:
                # Entries not read yet arrived after the last one read, or after this read if none was.
                floor = int(out[kind][-1][0].split(b"-")[0]) * 1000 if kind in out else read_at - SECOND
                self._arrival_floor[kind] = max(self._arrival_floor.get(kind, 0), floor)
        return out

    def process(self, entries: dict[str, list]) -> None:
        t0 = time.perf_counter()
        new = {}
        arrivals = []
        for kind, items in entries.items():
            decoded = decode(self.landing.place(kind).kind, items)
            self.stats.events += len(items)
            self.stats.invalid += len(decoded.invalid_ids)
            new[kind] = (decoded, decoded.arrival_us if self.cfg.clock == "wall" else None)
            arrivals.append(decoded.arrival_us)
        clock = now_us() if self.cfg.clock == "wall" else None
        t = self.stats.phase("decode", t0)
        result = self.core.step({k: (d.events, a) for k, (d, a) in new.items()}, now_us=clock)
        t = self.stats.phase("compute", t)
        arrived = np.concatenate(arrivals) if arrivals else None
        self._submit(self._send, self.writer.all_commands(result.rows, now_us()), arrived,
                     background=arrived is not None and len(arrived) >= self.cfg.background_writes_from)
        t = self.stats.phase("write", t)
        for kind, (decoded, _) in new.items():
            accepted, late = result.accepted.get(kind), result.too_late.get(kind)
            self.stats.accepted += accepted.num_rows if accepted is not None else 0
            self.stats.too_late += late.num_rows if late is not None else 0
            quarantine = {"late": late} if late is not None else {}
            if decoded.invalid.num_rows:
                quarantine["invalid"] = decoded.invalid
            self.landing.add(kind, decoded.event_ids + decoded.invalid_ids, accepted, quarantine)
        self.stats.duplicates += result.duplicates
        self.stats.steps += 1
        self.stats.phase("land", t)
        self.stats.step_ms.append((time.perf_counter() - t0) * 1000)

    # ------------------------------------------------------------------ I/O and landing threads
    # Writes of large steps run on the I/O thread, in submission order, while the next step is
    # computed: the server's time (the write script) overlaps with Python's. Landing to Parquet
    # and acknowledging run on the landing thread; an acknowledgement waits for every write
    # submitted before its events were handed over, so an acknowledged event is landed and served.

    def _submit(self, fn: Callable, *args: object, background: bool = True) -> None:
        """Run ``fn(*args)`` after every I/O job submitted before it: on the I/O thread, or here
        (``background=False``: small live steps, where a thread hand-off costs more latency
        than it saves)."""
        if not background:
            self._wait(self._io_jobs)
            fn(*args)
            return
        self._reap()
        while len(self._io_jobs) >= 4:  # back-pressure: Redis must keep up
            self._io_jobs[0].result()
            self._reap()
        self._io_jobs.append(self._io.submit(fn, *args))

    def _reap(self) -> None:
        """Forget finished I/O and landing jobs, raising the first error any of them met."""
        for jobs in (self._io_jobs, self._land_jobs):
            while jobs and jobs[0].done():
                jobs.popleft().result()

    def drain(self) -> None:
        """Wait until every write, landing and acknowledgement submitted so far is done."""
        self._wait(self._io_jobs)
        self._wait(self._land_jobs)

    def _wait(self, jobs: deque[Future]) -> None:
        t = time.perf_counter()
        while jobs:
            jobs.popleft().result()
        self.stats.phase("io wait", t)

    def _send(self, commands: list, arrived_us: np.ndarray | None) -> None:
        try:
            results = self.writer.send(commands)
        except Exception as e:
            self._io_error = e  # no acknowledgement may follow (see _ack)
            raise
        refused = self.stats.wrote(results, arrived_us)
        if refused:
            self.log(f"warning: Redis refused {refused} row(s) stamped more than "
                     f"{contract.MAX_AHEAD_US / SECOND:g} s ahead of its clock (is this machine's clock ahead of Redis's?)")

    def _ack(self, ids_by_kind: dict[str, list]) -> None:
        if self._io_error is not None:  # those events may not be served: leave them pending
            raise RuntimeError("events not acknowledged: a write to Redis failed") from self._io_error
        self.leases.ack_all({self.streams[kind]: ids for kind, ids in ids_by_kind.items()})

    def flush(self) -> None:
        """Land the buffered events as Parquet, then acknowledge them, on the landing thread:
        a flush writes files for tens of milliseconds, which would stall the steps. Landing
        waits for the writes to Redis submitted before it, so a landed event is served (a
        restart treats landed events as done) and an acknowledged one is landed and served."""
        t = time.perf_counter()
        pending = self.landing.take()
        if pending:
            self._land_jobs.append(self._lander.submit(self._land, pending, list(self._io_jobs)))
        self.stats.phase("flush", t)

    def _land(self, pending: dict, writes: list[Future]) -> None:
        for write in writes:
            write.result()  # a failed write raises here: nothing more is landed or acknowledged
        landed = self.landing.write(pending)
        if landed:
            self._ack(landed)

    def tick(self) -> bool:
        """One iteration: read, compute, write, land and acknowledge when due. True if
        events were read."""
        self.leases.check()
        with collector.paused():
            entries = self.read(self._block_ms())
            due = self.core.next_change_point() if self.cfg.clock == "wall" else None
            timers = (due is not None and due <= now_us()
                      and (time.monotonic() - self._last_step) * 1000 >= self.cfg.timer_ms)
            if entries or timers:
                self.process(entries)
                self._last_step = time.monotonic()
        self._reap()  # a failed landing or write stops the loop here
        if self.landing.due():
            self.flush()
        if time.monotonic() - self._last_trim >= self.cfg.trim_every_s:
            self.core.trim(self._arrival_floor if self.cfg.clock == "wall" else None)
            self._last_trim = time.monotonic()
        return bool(entries)

    def stop(self, *_: object) -> None:
        self._stop = True

    def run(self, *, until_idle_s: float | None = None, max_events: int | None = None,
            progress_s: float = 5.0) -> Stats:
        """Process until stopped (SIGINT/SIGTERM), idle for ``until_idle_s`` seconds, or
        ``max_events`` consumed. Lands and acknowledges everything before returning.

        When Redis becomes unreachable, waits for it (see the module docstring) and goes on.
        After any other error it acknowledges nothing more, so the entries not known to be
        served stay pending for the next start. Raises ``OperationalError`` (one line) when
        another processor holds a stream, Redis refuses the credentials, or stays away longer
        than ``reconnect_timeout_s``."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread
                signal.signal(sig, self.stop)
        started = False
        try:
            if not self._take_leases():
                return self.stats  # stopped while waiting as a standby
            started = True
            warning = durability_warning(self.redis, self.address)
            if warning:
                self.log(f"warning: {warning}")
            while True:
                try:
                    self._run_once(until_idle_s, max_events, progress_s)
                    return self.stats
                except Exception as exc:
                    if not connection_lost(exc) or self._stop:
                        raise
                    self._abandon()
                    self._wait_for_redis(exc)
                    self.stats.reconnects += 1
        finally:
            self.leases.release()
            if started:
                self.log(self.stats.line())
                self.log("time by phase: " + ", ".join(f"{k} {v / 1000:.1f}s" for k, v in self.stats.phase_ms.items()))

    def _take_leases(self) -> bool:
        """Wait for Redis, then take every stream's lease (waiting for it as a standby); False
        when stopped while waiting."""
        error: BaseException | None = None
        while True:
            self._wait_for_redis(error)
            try:
                return self.leases.take(standby=self.cfg.standby, stopped=lambda: self._stop)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                error = exc

    def _run_once(self, until_idle_s: float | None, max_events: int | None, progress_s: float) -> None:
        """One start: take over pending entries, rebuild the state, consume until done."""
        self.ensure_groups()
        loaded = self.bootstrap()
        self.log(f"state rebuilt from {loaded:,} landed events; clock {self.cfg.clock}, "
                 f"lateness {self.cfg.lateness_s:g}s; consuming {', '.join(self.streams.values()) or 'nothing yet'}")
        collection = collector.Collector(self.cfg.gc_every_s, self.cfg.gc_full_every_s, self.cfg.gc_backlog_every_s)
        collection.start()
        last_activity = last_progress = time.monotonic()
        failed = True
        try:
            with collector.paused():  # collected on a timer instead (featurelib.stream.collector)
                while not self._stop:
                    collection.tick(backlog=self._read_ahead is not None)
                    if self.tick():
                        last_activity = time.monotonic()
                    if max_events is not None and self.stats.events >= max_events:
                        break
                    if until_idle_s is not None and time.monotonic() - last_activity >= until_idle_s:
                        break
                    if time.monotonic() - last_progress >= progress_s:
                        self.log(self.stats.line())
                        last_progress = time.monotonic()
            self.flush()
            self.drain()
            failed = False
        finally:
            if failed:
                self._abandon()
            collection.stop()

    def _abandon(self) -> None:
        """Let the threads finish what they started (their errors are the one already being
        reported), then forget everything not acknowledged: it stays pending in Redis."""
        for job in [self._read_ahead, *self._io_jobs, *self._land_jobs]:
            if job is not None:
                with contextlib.suppress(Exception):
                    job.result()
        self._reset()

    def _wait_for_redis(self, error: BaseException | None) -> None:
        wait_for_redis(self.redis, self.address, self.log, self.cfg.reconnect_timeout_s, lambda: self._stop, error)
