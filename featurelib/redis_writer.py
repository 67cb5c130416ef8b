"""The one writer of stream-contract rows: ``(key, script args)`` pairs (``contract.write_args``)
sent through ``featurelib/write_row.lua``, pipelined, ``contract.ROWS_PER_CALL`` rows per call.

It owns the script's loading (and reloading after a server lost its script cache), the
pipelining, the routing of a Redis Cluster's rows to their primaries, and the sync and asyncio
clients alike. Feast's writes (``featurelib.online_store``) and the stream processor
(``featurelib.stream.sink``) both write through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from featurelib import contract, errors

Command = tuple[str, list]
"""One row: its key and its script arguments (``contract.write_args``)."""


class RedisRowWriter:
    """Writes rows through the contract's script; one per client kind, keeping the script's SHA."""

    def __init__(self) -> None:
        self._sha: str | None = None
        self._sha_async: str | None = None

    def write(self, client: Any, commands: Sequence[Command]) -> list[int]:
        """Write ``commands`` in one pipeline; the script's result per row: ``contract.WRITTEN``
        (1), ``OLDER`` (0, a newer row was stored), ``REFUSED_FUTURE`` (-1, stamped more than
        ``contract.MAX_AHEAD_US`` µs ahead of the server's clock) or ``REFUSED_INVALID`` (-2)."""
        from redis.cluster import RedisCluster

        if not commands:
            return []
        if isinstance(client, RedisCluster):
            return _write_cluster(client, commands)
        calls = contract.script_calls(commands)
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = client.script_load(contract.WRITE_SCRIPT)
            try:
                pipe = client.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.evalsha(self._sha, len(keys), *keys, *args)
                return [int(written) for reply in pipe.execute() for written in reply]
            except NoScriptError:  # the server lost its script cache (restart, SCRIPT FLUSH)
                self._sha = None
                if attempt == 2:
                    raise
        return []

    async def write_async(self, client: Any, commands: Sequence[Command]) -> list[int]:
        """``write`` on an asyncio client (not a cluster: see ``_write_cluster``)."""
        if not commands:
            return []
        calls = contract.script_calls(commands)
        for attempt in (1, 2):
            if self._sha_async is None:
                self._sha_async = await client.script_load(contract.WRITE_SCRIPT)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for keys, args in calls:
                        pipe.evalsha(self._sha_async, len(keys), *keys, *args)
                    return [int(written) for reply in await pipe.execute() for written in reply]
            except NoScriptError:
                self._sha_async = None
                if attempt == 2:
                    raise
        return []


def _write_cluster(client: Any, commands: Sequence[Command]) -> list[int]:
    """redis-py refuses EVALSHA in cluster pipelines: pipeline on each primary's own connection
    instead, and send anything a node refuses (a slot that moved) through the cluster client,
    which follows MOVED/ASK redirects."""
    by_slot: dict[int, list[int]] = {}
    for i, (key, _) in enumerate(commands):
        by_slot.setdefault(client.keyslot(key), []).append(i)
    by_node: dict[str, tuple[Any, list[list[int]]]] = {}
    for positions in by_slot.values():
        node = client.get_node_from_key(commands[positions[0]][0])
        for start in range(0, len(positions), contract.ROWS_PER_CALL):
            by_node.setdefault(node.name, (node, []))[1].append(positions[start:start + contract.ROWS_PER_CALL])
    results: list[int] = [0] * len(commands)
    retry: list[int] = []
    for node, groups in by_node.values():
        conn = node.redis_connection or client.get_redis_connection(node)
        sha = conn.script_load(contract.WRITE_SCRIPT)
        pipe = conn.pipeline(transaction=False)
        for group in groups:
            pipe.evalsha(sha, len(group), *[commands[i][0] for i in group], *[a for i in group for a in commands[i][1]])
        for group, reply in zip(groups, pipe.execute(raise_on_error=False)):
            if isinstance(reply, Exception):
                retry.extend(group)
            else:
                for i, written in zip(group, reply):
                    results[i] = int(written)
    for i in retry:
        key, args = commands[i]
        results[i] = int(client.eval(contract.WRITE_SCRIPT, 1, key, *args)[0])
    return results


class Refusals:
    """The rows of one write that the script refused (-1, -2), tallied chunk by chunk, so the
    write can finish every chunk and then raise once."""

    def __init__(self, view: str) -> None:
        self.view = view
        self.refused = 0
        self.first: tuple[str, Any, int] | None = None  # key, event timestamp argument, result

    def add(self, commands: Sequence[Command], results: Sequence[int]) -> None:
        """Tally one chunk: ``results[i]`` is the script's result for ``commands[i]``."""
        if not results or min(results) >= contract.OLDER:
            return
        for (key, args), result in zip(commands, results):
            if result < contract.OLDER:
                self.refused += 1
                if self.first is None:
                    self.first = (key, args[0], result)

    def raise_if_any(self) -> None:
        """``errors.RowsRefusedError`` naming the count and the first refused row, if any."""
        if self.first is not None:
            key, event_ts, result = self.first
            raise errors.RowsRefusedError(self.view, self.refused, key, event_ts, result, contract.MAX_AHEAD_US)
