"""The partitioned stream processor: ``python -m featurelib.stream run --partitions N``.

Producers write every event once per family of its stream, to the partition of its entity
(``featurelib.stream.partitions``); each partition has one owner at a time, through a lease
(``featurelib.stream.lease``) in the partition's hash slot. A processor serves a fair share of
every family's partitions (``featurelib.stream.assignment``), so N processors on N machines split
the work and no entity is split across two. Everything else is the processor of
``featurelib.stream.processor``, with one *lane* (its own window state, clock, cursor and landing
directory) per partition owned; its rows go through the same write commands.

* **Reads** go partition by partition: one ``XREADGROUP`` per hash slot on a Redis Cluster
  (several streams in one call would be CROSSSLOT), one for every partition on a single server.
* **Taking a partition** (at start, or from a processor that stopped or died): take its lease,
  claim the entries pending under other consumer names, rebuild the partition's state from its
  entities' landed events (``featurelib.stream.partition_state``), read its pending entries,
  then new ones.
* **Giving one back** (a processor started later needs its share): land and acknowledge
  everything read, forget the partition's state, release its lease.
* **Time.** With ``--clock event`` each partition's clock is the highest event time seen in it;
  lateness is judged per partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.cluster import RedisCluster
from redis.crc import key_slot

from featurelib import paths
from featurelib.raw_reader import RawEvents
from featurelib.stream.assignment import Assignment
from featurelib.stream.config import ProcessorConfig
from featurelib.stream.core import StreamCore
from featurelib.stream.groups import ensure_groups
from featurelib.stream.landing import Landing, Place
from featurelib.stream.lease import Leases
from featurelib.stream.partition_state import lane_events
from featurelib.stream.partitions import Lane, check_count, lanes
from featurelib.stream.processor import StreamProcessor
from featurelib.stream.redis_link import connection_lost
from featurelib.stream.stats import Stats
from featurelib.timeutil import SECOND, now_us

IDLE_POLL_MS = 10
"""On a Redis Cluster, an idle processor reads again after this long (a read cannot wait on
streams of several slots at once)."""

REBALANCE_S = 1.0
"""How often a processor looks for partitions to take or give back (at most ``lease_ttl / 3``)."""


class PartitionedProcessor(StreamProcessor):
    def __init__(self, cfg: ProcessorConfig, log: Callable[[str], None] | None = None):
        if cfg.partitions < 2:
            raise ValueError("a partitioned processor needs at least 2 partitions")
        self.lanes = {lane.stream: lane for lane in lanes(cfg.streams, cfg.partitions)}
        self.owned: dict[str, Lane] = {}
        self._cursors: dict[str, bytes | str | None] = {}  # per partition read: pending id to read after, or None: new
        super().__init__(cfg, log)
        self.leases = Leases(self.redis, cfg.group, [], cfg.consumer, cfg.lease_ttl_s, self.log)
        self.assignment = Assignment(self.redis, self.leases, list(self.lanes.values()), cfg.streams, cfg.group,
                                     self.log)
        self.leases.on_beat.append(self.assignment.beat)
        self.cluster = isinstance(self.redis, RedisCluster)
        self.rebalance_s = min(REBALANCE_S, cfg.lease_ttl_s / 3)
        self._next_rebalance = 0.0

    @property
    def streams(self) -> dict[str, str]:
        return {name: name for name in self.owned}

    def _place(self, name: str) -> Place:
        lane = self.lanes[name]
        return Place(lane.kind, lane.landed_dir(self.cfg.repo), lane.quarantine_dir(self.cfg.repo))

    def _reset(self) -> None:
        super()._reset()
        self.core = StreamCore(int(self.cfg.lateness_s * SECOND), kinds=())
        self.landing = Landing(paths.raw_dir(self.cfg.repo), paths.data_dir(self.cfg.repo) / "quarantine",
                               self.cfg.flush_rows, self.cfg.flush_seconds, place=self._place)
        self._cursors = {}

    # ------------------------------------------------------------------ ownership

    def _take_leases(self) -> bool:
        """Check the partition count, announce this processor, take a first fair share."""
        error: BaseException | None = None
        while True:
            self._wait_for_redis(error)
            try:
                check_count(self.redis, list(self.cfg.streams.values()), self.cfg.partitions)
                taken, _ = self.assignment.plan(set(self.owned))
                self.owned.update({lane.stream: lane for lane in taken})
                self.leases.start()
                self._next_rebalance = time.monotonic() + self.rebalance_s
                return True
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                error = exc

    def rebalance(self) -> None:
        """Give back the partitions above this processor's fair share, take free ones up to it."""
        self._next_rebalance = time.monotonic() + self.rebalance_s
        taken, extra = self.assignment.plan(set(self.owned))
        if extra:
            self.flush()
            self.drain()  # everything read from them is landed and acknowledged
            for lane in extra:
                self.core.drop_lane(lane.stream)
                self._cursors.pop(lane.stream, None)
                self._arrival_floor.pop(lane.stream, None)
                self.owned.pop(lane.stream, None)
            self.assignment.give(extra)
            self.log(f"gave back {', '.join(lane.stream for lane in extra)} (fair share)")
        if taken:
            started = time.monotonic()
            self.owned.update({lane.stream: lane for lane in taken})
            self._ensure_groups(taken)
            loaded = self.bootstrap(taken)
            self.log(f"took {', '.join(lane.stream for lane in taken)}: state rebuilt from {loaded:,} landed "
                     f"events in {time.monotonic() - started:.2f} s; now owns {len(self.owned)} partitions")

    def _ensure_groups(self, taken: list[Lane]) -> None:
        for message in ensure_groups(self.redis, {lane.stream: lane.stream for lane in taken}, self.cfg.group,
                                     self.cfg.consumer, self.landing.last_landed_id, self.address):
            self.stats.redis_lost.append(message)
            self.log(f"ERROR: {message}")

    def bootstrap(self, taken: list[Lane] | None = None) -> int:
        """Rebuild the state of the partitions ``taken`` (default: all owned), each from its own
        entities' events only; their pending entries are read first."""
        taken = list(self.owned.values()) if taken is None else taken
        loaded = 0
        for kind in sorted({lane.kind for lane in taken}):
            raw = RawEvents.scan(paths.raw_dir(self.cfg.repo), kind)  # invalid events left out, as the batch job does
            for lane in (x for x in taken if x.kind == kind):
                self.core.add_lane(lane.stream, lane.kind, lane.key)
                buffer = self.core.buffers[lane.stream]
                # An hour more than the windows need: entries read after a restart may trail the clock.
                margin = self.core.lateness_us + buffer.horizon_us + 3600 * SECOND
                table, clock = lane_events(raw, lane, self.cfg.repo, margin)
                buffer.add(table)
                self.core.clock[lane.stream] = clock
                if self.cfg.clock == "wall":
                    self.core.load(lane.stream)
                self._cursors[lane.stream] = "0"
                loaded += table.num_rows
        return loaded

    def tick(self) -> bool:
        self.leases.confirm()  # woken from a pause longer than the TTL: stop before reading another's partition
        if time.monotonic() >= self._next_rebalance:
            self.rebalance()
        return super().tick()

    def run(self, *, until_idle_s: float | None = None, max_events: int | None = None,
            progress_s: float = 5.0) -> Stats:
        try:
            return super().run(until_idle_s=until_idle_s, max_events=max_events, progress_s=progress_s)
        finally:
            self.assignment.leave()

    # ------------------------------------------------------------------ reads

    def _slot_groups(self) -> list[list[str]]:
        """The partitions read, in groups that one command may read: all on a single server, those
        of one hash slot on a cluster."""
        names = sorted(self._cursors)
        if not self.cluster:
            return [names] if names else []
        groups: dict[int, list[str]] = {}
        for name in names:
            groups.setdefault(key_slot(name.encode()), []).append(name)
        return list(groups.values())

    def _read(self, groups: list[list[str]], count: int, block_ms: int | None) -> dict[str, list]:
        pipe = self.redis.pipeline(transaction=False)
        for group in groups:
            pipe.xreadgroup(self.cfg.group, self.cfg.consumer, {n: self._cursors[n] or ">" for n in group},
                            count=count, block=block_ms)
        out = {}
        for reply in pipe.execute():
            for key, entries in reply or []:
                if entries:
                    out[key.decode() if isinstance(key, bytes) else key] = entries
        for name, cursor in list(self._cursors.items()):
            if cursor is not None:  # walking through its pending entries: on, or done
                self._cursors[name] = out[name][-1][0] if name in out else None
        return out

    def read(self, block_ms: int) -> dict[str, list]:
        """The next entries of every partition owned, by partition: pending ones first, then new
        ones; waits up to ``block_ms`` when there are none."""
        groups = self._slot_groups()
        if not groups:
            time.sleep(block_ms / 1000)  # nothing owned (yet): the next rebalance may take some
            return {}
        count = max(self.cfg.read_count // len(self._cursors), 1_000)
        fresh = [name for name, cursor in self._cursors.items() if cursor is None]
        read_at = now_us()
        out = self._read(groups, count, None)
        if not out and len(fresh) == len(self._cursors):
            if len(groups) == 1:
                read_at = now_us()
                out = self._read(groups, count, block_ms)
            else:
                time.sleep(min(block_ms, IDLE_POLL_MS) / 1000)
        for name in fresh:  # entries not read yet arrived after the last one read, or after this read
            floor = int(out[name][-1][0].split(b"-")[0]) * 1000 if name in out else read_at - SECOND
            self._arrival_floor[name] = max(self._arrival_floor.get(name, 0), floor)
        return out
