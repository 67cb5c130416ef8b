"""One owner per stream (or per partition of a partitioned stream): a lease in Redis, renewed by a
heartbeat, that fences acknowledgements.

A processor computes windows from *all* of an entity's events, so two processors sharing
one stream's consumer group would each see part of every entity and both write wrong
values. Before it reads a stream, a processor takes the stream's lease::

    {<stream key>}:lease:<group>    (a string, expires after ``ttl`` unless renewed)

holding ``<consumer>@<host>:<pid>:<nonce>``. The braces put the lease in the stream's hash
slot, so the fenced acknowledgement below runs in Redis Cluster too.

* Taking it is ``SET NX PX``. A second processor finds it held and refuses to start (a
  one-line error naming the holder), or, as a standby, waits until the holder is gone:
  released on a clean stop, or expired ``ttl`` after its last heartbeat. A holder on this
  host whose process no longer exists (``kill -9``) is gone at once.
* A heartbeat thread renews every lease every ``ttl / 3``. When Redis lost the lease (a
  restart without persistence) the heartbeat takes it again; when another processor holds
  it, the lease is *lost*: the processor stops before its next step.
* Acknowledgements are fenced: ``XACK`` runs in a script that first checks the lease
  value, so a processor that lost its lease (paused longer than ``ttl``) can never
  acknowledge entries its successor is processing.
* A partitioned processor (``featurelib.stream.partitioned``) takes and gives back partitions'
  leases one by one (``try_take``, ``release_one``), and ``confirm``s its leases before each read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster

from featurelib.errors import OperationalError

RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0
"""
"""Renew the lease if held by ARGV[1], take it again if it vanished; 0 when someone else holds it."""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

TAKE_FROM_DEAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
"""Replace the holder ARGV[1] (known dead) by ARGV[2], atomically."""

FENCED_ACK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
return redis.call('XACK', KEYS[2], ARGV[2], unpack(ARGV, 3))
"""
"""XACK the ids ARGV[3..] of stream KEYS[2] for group ARGV[2], only while holding lease KEYS[1]."""

ACK_CHUNK = 5_000
"""Ids per fenced acknowledgement (Lua's ``unpack`` takes a few thousand values at most)."""


class LeaseHeld(OperationalError):
    """Another processor holds the lease of a stream."""


class LeaseLost(OperationalError):
    """This processor's lease was taken by another one: it must stop at once."""


def lease_key(stream: str, group: str) -> str:
    return f"{{{stream}}}:lease:{group}"


@dataclass(frozen=True)
class Holder:
    consumer: str
    host: str
    pid: int

    @classmethod
    def parse(cls, value: bytes | str) -> Holder | None:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        try:
            consumer, rest = text.rsplit("@", 1)
            host, pid, _ = rest.rsplit(":", 2)
            return cls(consumer, host, int(pid))
        except ValueError:
            return None

    def is_dead(self) -> bool:
        """True only when the holder ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def __str__(self) -> str:
        return f"{self.consumer} (pid {self.pid} on {self.host})"


class Leases:
    """The leases of one processor: one per stream it consumes, one heartbeat thread for all."""

    def __init__(self, client: redis.Redis, group: str, streams: list[str], consumer: str, ttl_s: float = 10.0,
                 log: Callable[[str], None] | None = None):
        self.client, self.group, self.streams = client, group, list(streams)
        self.ttl_ms = int(ttl_s * 1000)
        self.token = f"{consumer}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.log = log or (lambda _: None)
        self.lost: str | None = None
        self.renewed_at = 0.0
        """``time.monotonic()`` of the last renewal of every lease held."""
        self._held: set[str] = set()
        self._lock = threading.Lock()  # a lease given back is never renewed after (``release_one``)
        self.on_beat: list[Callable[[], None]] = []
        """Also run by each heartbeat (a partitioned processor announces itself)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ack = client.register_script(FENCED_ACK)
        self._renew = client.register_script(RENEW)

    # ------------------------------------------------------------------ taking and giving back

    def try_take(self, stream: str) -> Holder | None:
        """Take the lease of ``stream``; returns None when taken, else who holds it."""
        key = lease_key(stream, self.group)
        if self.client.set(key, self.token, nx=True, px=self.ttl_ms):
            self._held.add(stream)
            return None
        value = self.client.get(key)
        if value is None:
            return self.try_take(stream)  # expired in between
        if value.decode(errors="replace") == self.token:
            self._held.add(stream)
            return None
        holder = Holder.parse(value) or Holder(value.decode(errors="replace"), "?", -1)
        if holder.is_dead() and self.client.eval(TAKE_FROM_DEAD, 1, key, value, self.token, self.ttl_ms):
            self.log(f"took over {stream} from {holder}, which no longer runs")
            self._held.add(stream)
            return None
        return holder

    def take(self, *, standby: bool = False, poll_s: float | None = None,
             stopped: Callable[[], bool] = lambda: False) -> bool:
        """Take every stream's lease. Without ``standby``, a held one is a ``LeaseHeld`` error;
        with it, wait until each is free (its holder stopped, or stopped renewing), or until
        ``stopped()``: then give back what was taken and return False."""
        poll = poll_s if poll_s is not None else max(self.ttl_ms / 4000, 0.05)
        waiting_logged = set()
        for stream in self.streams:
            while True:
                holder = self.try_take(stream)
                if holder is None:
                    break
                if not standby:
                    self.release()
                    remaining = self.client.pttl(lease_key(stream, self.group))
                    raise LeaseHeld(
                        f"another processor, {holder}, consumes {stream} in group {self.group} (its lease "
                        f"expires in {max(remaining, 0) / 1000:.1f} s unless renewed): stop it first, or start "
                        f"this one with --standby to take over when it stops")
                if stream not in waiting_logged:
                    self.log(f"standby: {holder} consumes {stream}; taking over when it stops")
                    waiting_logged.add(stream)
                if stopped():
                    self.release()
                    return False
                time.sleep(poll)
        self.start()
        return True

    def release_one(self, stream: str) -> None:
        """Give back the lease of ``stream`` (a partition handed to another processor)."""
        with self._lock:
            self._held.discard(stream)
            self.client.eval(RELEASE, 1, lease_key(stream, self.group), self.token)

    def release(self) -> None:
        """Give back every lease held (a standby takes over at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for stream in list(self._held):
            with contextlib.suppress(redis.RedisError):
                self.client.eval(RELEASE, 1, lease_key(stream, self.group), self.token)
            self._held.discard(stream)

    # ------------------------------------------------------------------ heartbeat and fencing

    def start(self) -> None:
        """Start the heartbeat thread (``take`` does; a partitioned processor takes leases one by one)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="stream-lease", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Renew every lease once; a lease someone else holds is lost (see ``lost``)."""
        with self._lock:
            self._renew_held()

    def _renew_held(self) -> None:
        started = time.monotonic()
        for stream in list(self._held):
            if self._renew(keys=[lease_key(stream, self.group)], args=[self.token, self.ttl_ms]) == 0:
                holder = Holder.parse(self.client.get(lease_key(stream, self.group)) or b"?")
                self.lost = (f"lost the lease of {stream} to {holder or 'another processor'}: this processor was "
                             f"unresponsive for more than {self.ttl_ms / 1000:g} s and another one took over")
                self._held.discard(stream)
        self.renewed_at = started

    def confirm(self) -> None:
        """``check``, renewing first when the last renewal is older than half the TTL (this process
        was paused, or its heartbeat thread starved): a lease taken over is noticed before any read."""
        if time.monotonic() - self.renewed_at > self.ttl_ms / 2000:
            self.renew()
        self.check()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            with contextlib.suppress(redis.RedisError, OSError):  # Redis away: the processor reconnects
                self.renew()
                for beat in self.on_beat if self.lost is None else ():
                    beat()

    def check(self) -> None:
        """Raise ``LeaseLost`` when the heartbeat found a lease taken by another processor."""
        if self.lost is not None:
            raise LeaseLost(self.lost)

    def check_acks(self, replies: list) -> None:
        """``LeaseLost`` when a fenced acknowledgement (``ack``) found the lease held by another."""
        if any(reply == -1 for reply in replies):
            self.lost = self.lost or "another processor holds the lease: acknowledgements refused"
            self.check()

    def ack_all(self, ids_by_stream: dict[str, list]) -> None:
        """Fenced acknowledgements of ``ids_by_stream``, pipelined (one script call at a time on a
        Redis Cluster, whose pipelines run no scripts); ``LeaseLost`` when another holds a lease."""
        if isinstance(self.client, RedisCluster):
            replies = [self._ack(keys=[lease_key(stream, self.group), stream],
                                 args=[self.token, self.group, *ids[start:start + ACK_CHUNK]])
                       for stream, ids in ids_by_stream.items() for start in range(0, len(ids), ACK_CHUNK)]
        else:
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in ids_by_stream.items():
                self.ack(pipe, stream, ids)
            replies = pipe.execute() if len(pipe) else []
        self.check_acks(replies)

    def ack(self, pipe, stream: str, ids: list) -> None:
        """Queue fenced acknowledgements of ``ids`` on ``pipe`` (results: count, or -1 when not held)."""
        for start in range(0, len(ids), ACK_CHUNK):
            self._ack(keys=[lease_key(stream, self.group), stream], args=[self.token, self.group,
                                                                        *ids[start:start + ACK_CHUNK]], client=pipe)
