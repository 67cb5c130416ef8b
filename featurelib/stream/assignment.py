"""Which processor owns which partitions: live processors, fair shares, free partitions taken.

Each processor announces itself in a sorted set per stream and consumer group ::

    <stream key>:processors:<group>    member: its lease token, score: Redis's time of its last beat

beaten by the lease heartbeat (every ``ttl / 3``) and by each rebalance; members silent for
longer than ``ttl`` (or, on this host, whose process is gone) are dropped. Every ``rebalance_s``
a processor computes, per family, its fair share ``ceil(N / live processors)``: it takes free
partitions (lease ``SET NX``, or a lease whose holder's process is gone) up to its share, and
gives back the partitions above it (highest first) once everything it read from them is landed
and acknowledged, so that a processor started later gets its share. A processor killed holds its
partitions until its lease expires (``ttl``; at once on the same host), then the survivors take
them over.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import redis

from featurelib.stream.lease import Holder, Leases
from featurelib.stream.partitions import Lane

BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
"""Announce ARGV[1] now (Redis's clock), drop members silent for ARGV[2] ms, return the live ones."""


def members_key(base: str, group: str) -> str:
    return f"{base}:processors:{group}"


def fair_share(partitions: int, processors: int) -> int:
    """How many partitions of a family each of ``processors`` live processors may own."""
    return math.ceil(partitions / max(processors, 1))


class Assignment:
    """One processor's view of who is alive, and its taking and giving back of partitions."""

    def __init__(self, client: redis.Redis, leases: Leases, lanes: list[Lane], bases: dict[str, str], group: str,
                 log: Callable[[str], None] | None = None):
        self.client, self.leases, self.lanes = client, leases, lanes
        self.keys = {kind: members_key(base, group) for kind, base in bases.items()}
        self.log = log or (lambda _: None)
        self._beat = client.register_script(BEAT)
        self.live: dict[str, list[str]] = {}

    def beat(self) -> None:
        """Announce this processor on every stream it serves; remember who else is alive."""
        for kind, key in self.keys.items():
            members = [m.decode() if isinstance(m, bytes) else m
                       for m in self._beat(keys=[key], args=[self.leases.token, self.leases.ttl_ms])]
            alive = []
            for member in members:
                holder = Holder.parse(member)
                if member != self.leases.token and holder is not None and holder.is_dead():
                    self.client.zrem(key, member)  # killed on this host: gone at once
                else:
                    alive.append(member)
            self.live[kind] = sorted(alive)

    def leave(self) -> None:
        for key in self.keys.values():
            with contextlib.suppress(redis.RedisError):
                self.client.zrem(key, self.leases.token)

    def share(self, kind: str, partitions: int) -> int:
        return fair_share(partitions, len(self.live.get(kind) or [self.leases.token]))

    def plan(self, owned: set[str]) -> tuple[list[Lane], list[Lane]]:
        """Beat, then take free partitions up to each family's fair share; returns the partitions
        taken now and those to give back (above the share; the caller drains them, then calls
        ``give``)."""
        self.beat()
        taken, extra = [], []
        families: dict[tuple[str, str], list[Lane]] = {}
        for lane in self.lanes:
            families.setdefault(lane.family, []).append(lane)
        for (kind, _), family in families.items():
            share = self.share(kind, len(family))
            mine = [lane for lane in family if lane.stream in owned]
            if len(mine) > share:
                extra += mine[share:][::-1]
                continue
            live = self.live.get(kind) or [self.leases.token]
            rank = live.index(self.leases.token) if self.leases.token in live else 0
            start = (rank * share) % len(family)  # processors starting together try different partitions first
            for lane in family[start:] + family[:start]:
                if len(mine) >= share:
                    break
                if lane.stream not in owned and self.leases.try_take(lane.stream) is None:
                    mine.append(lane)
                    taken.append(lane)
        return taken, extra

    def give(self, lanes: list[Lane]) -> None:
        for lane in lanes:
            self.leases.release_one(lane.stream)
