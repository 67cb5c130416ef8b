"""The processor's consumer groups: created when missing, checked against what was landed
from them (a Redis that restarted empty lost entries), and entries left pending under other
consumer names taken over."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import redis

from featurelib.stream.redis_link import entry_id

EntryId = tuple[int, int]


def ensure_groups(client: redis.Redis, streams: dict[str, str], group: str, consumer: str,
                  last_landed: Callable[[str], EntryId | None], address: str) -> list[str]:
    """Create ``group`` on every stream (kind -> key), take over entries pending under other
    consumer names (a renamed or dead processor: this one holds the lease) so that they are
    landed too, and return one message per stream whose landed entries Redis lost."""
    lost = []
    for kind, key in streams.items():
        try:
            client.xgroup_create(key, group, id="0", mkstream=True)
            created = True
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            created = False
        message = _loss(client, key, group, created, last_landed(kind), address)
        if message:
            lost.append(message)
        start = "0-0"
        while True:
            reply = client.xautoclaim(key, group, consumer, min_idle_time=0, start_id=start, count=1000)
            start = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            if start == "0-0":
                break
    return lost


def _loss(client: redis.Redis, key: str, group: str, created: bool, landed: EntryId | None,
          address: str) -> str | None:
    """What Redis lost of ``key`` that was landed: the stream ends before the last entry landed
    from it, or its consumer group was gone and its entries now start after that one (a group
    added beside a stream that kept its entries is no loss)."""
    if landed is None:
        return None
    info = client.xinfo_stream(key)
    last = entry_id(info["last-generated-id"])
    first = entry_id(info["first-entry"][0]) if info.get("first-entry") else None
    if last < landed:
        what = f"it ends at entry {last[0]}-{last[1]}, before entry {landed[0]}-{landed[1]} that was landed"
    elif created and (first is None or first > landed):
        what = f"its consumer group {group!r} was gone, and so were its entries up to the last one landed"
    else:
        return None
    return (f"Redis at {address} lost data of {key}: {what}. It was restarted without persistence (or "
            f"from an old snapshot): entries added and not landed before that are lost, and online rows "
            f"may be missing. Run Redis with appendonly yes, and `python feature_utils.py restore-online`.")


def durability_warning(client: redis.Redis, address: str) -> str | None:
    """A warning when Redis keeps no append-only file: a restart would lose the backlog."""
    with contextlib.suppress(redis.RedisError):
        if not int(client.info("persistence").get("aof_enabled", 1)):
            return (f"Redis at {address} keeps no append-only file (appendonly no): a restart loses the "
                    f"unconsumed backlog and the online store (see the README's stream section)")
    return None
