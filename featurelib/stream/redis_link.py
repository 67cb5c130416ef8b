"""The stream processor's link to Redis: what counts as a lost connection, how quickly a command
on a dead connection fails, how long to wait before trying again, and how Redis Streams replies
and entry ids are read."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from featurelib.errors import OperationalError, first_line

RECONNECT_BACKOFF_S = (0.1, 5.0)
"""Waits between attempts to reach Redis again: from the first, doubling, up to the second."""

SOCKET_TIMEOUT_S = 60.0
"""A Redis command that gets no answer for this long counts as Redis being unreachable."""


def connection_lost(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) says Redis could not be reached, or no longer has
    the consumer group (it restarted empty): the processor starts over. Wrong credentials are
    not a lost connection."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, redis.AuthenticationError):
            return False
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return True
        if isinstance(exc, redis.ResponseError) and str(exc).startswith("NOGROUP"):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def raw_streams(reply, **_) -> list:
    """An XREADGROUP reply as ``[(stream, [(id, [field, value, ...]), ...]), ...]`` (RESP2 or 3)."""
    if not reply:
        return []
    return list(reply.items()) if isinstance(reply, dict) else reply


def fail_fast(client) -> None:
    """A command on a connection Redis dropped fails after one quick retry (the processor then
    reconnects itself), and a command without an answer for ``SOCKET_TIMEOUT_S`` fails."""
    with contextlib.suppress(AttributeError):
        client.set_retry(Retry(ExponentialBackoff(cap=0.5, base=0.05), 1))
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        for name, seconds in (("socket_timeout", SOCKET_TIMEOUT_S), ("socket_connect_timeout", 5.0)):
            if pool.connection_kwargs.get(name) is None:
                pool.connection_kwargs[name] = seconds


def entry_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = (value.decode() if isinstance(value, bytes) else value).partition("-")
    return int(ms), int(seq or 0)


def wait_for_redis(client: redis.Redis, address: str, log: Callable[[str], None], timeout: float | None,
                   stopped: Callable[[], bool], error: BaseException | None = None) -> None:
    """Return once Redis answers PING, waiting with growing pauses (``RECONNECT_BACKOFF_S``);
    ``OperationalError`` on refused credentials, after ``timeout`` seconds, or when ``stopped()``.
    ``error``: what lost the connection, if anything."""
    started = time.monotonic()
    delay, cap = RECONNECT_BACKOFF_S
    if error is not None:
        log(f"Redis at {address} lost ({first_line(error)}): starting over; entries not "
            f"acknowledged will be read again")
    while True:
        try:
            client.ping()
            if error is not None:
                log(f"Redis at {address} answers again after {time.monotonic() - started:.1f} s")
            return
        except redis.AuthenticationError as exc:
            raise OperationalError(f"Redis at {address} refused the credentials ({first_line(exc)}): "
                                   f"check REDIS_PASSWORD or the password in REDIS_CONNECTION_STRING") from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if error is None:
                error = exc
                log(f"waiting for Redis at {address} ({first_line(exc)})")
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                raise OperationalError(f"Redis at {address} unreachable for {waited:.0f} s "
                                       f"({first_line(exc)}); giving up") from None
            if stopped():
                raise OperationalError(f"stopped while Redis at {address} was unreachable") from None
            time.sleep(delay if timeout is None else min(delay, max(timeout - waited, 0.01)))
            delay = min(delay * 2, cap)
