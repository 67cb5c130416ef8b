"""The Feast provider named in ``feature_store.yaml``: Feast's ``local`` provider, except that
``get_online_features`` (sync and async) runs through ``featurelib.serving.plan``.

``provider: featurelib.serving.provider.ServingProvider`` gives every reader of this
repository the compiled path: the SDK (``FeatureStore.get_online_features``), ``feast serve``
and ``python feature_utils.py serve``. A request costs: a plan lookup (one dict hit per
registry version), key building, one pipelined round trip, decoding and the on-demand view.
Requests a plan cannot reproduce exactly go through Feast's own path (``plan`` module
docstring), as do reads when the online store is not ``RedisHashOnlineStore``.

Differences from Feast's path, all deliberate and documented in docs/SERVING.md: a null,
mistyped or missing entity id, a request field of the wrong type, empty entity rows and a
feature reference without ``:`` raise ``errors.BadRequestError`` (HTTP 422) instead of
serving nulls or failing with a 500; a stored value that does not parse is null with
status ``NULL_VALUE`` instead of failing the request; a Redis failure raises
``errors.StoreUnavailableError`` (HTTP 503).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from feast.infra.passthrough_provider import PassthroughProvider
from feast.online_response import OnlineResponse
from feast.protos.feast.types.Value_pb2 import RepeatedValue
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

try:
    from hiredis import pack_command as _pack
except ImportError:  # redis-py without hiredis: its own pipeline
    _pack = None

from featurelib import feast_compat
from featurelib.errors import StoreUnavailableError, first_line
from featurelib.serving import observe
from featurelib.serving.plan import ReadPlan, ReadPlans
from featurelib.serving.reads import BoundRequest
from featurelib.serving.response import ColumnarOnlineResponse
from featurelib.timeutil import to_us


class ServingProvider(PassthroughProvider):
    """Feast's passthrough provider with the compiled online read path."""

    def __init__(self, config: Any):
        super().__init__(config)
        self.plans = ReadPlans()

    def compiled(
        self,
        config: Any,
        features: Any,
        registry: Any,
        project: str,
        full_feature_names: bool,
        include_metadata: bool = False,
    ) -> ReadPlan | None:
        """The compiled plan for a request, or None when Feast's own path must serve it."""
        from featurelib.online_store import RedisHashOnlineStore

        if not isinstance(self.online_store, RedisHashOnlineStore):
            return None
        return self.plans.plan(
            registry, project, features, full_feature_names, include_metadata, config.online_store.key_prefix
        )

    def get_online_features(
        self,
        config,
        features,
        entity_rows,
        registry,
        project,
        full_feature_names=False,
        include_feature_view_version_metadata=False,
    ) -> OnlineResponse:
        plan = self.compiled(
            config, features, registry, project, full_feature_names, include_feature_view_version_metadata
        )
        if plan is None or _has_protos(entity_rows):
            return super().get_online_features(
                config,
                features,
                entity_rows,
                registry,
                project,
                full_feature_names,
                include_feature_view_version_metadata,
            )
        request = plan.bind(entity_rows)
        replies = read_sync(self.online_store.client(config), request)
        return ColumnarOnlineResponse(request.result(replies, to_us(feast_compat.utc_now())))

    async def get_online_features_async(
        self,
        config,
        features,
        entity_rows,
        registry,
        project,
        full_feature_names=False,
        include_feature_view_version_metadata=False,
    ) -> OnlineResponse:
        plan = self.compiled(
            config, features, registry, project, full_feature_names, include_feature_view_version_metadata
        )
        if plan is None or _has_protos(entity_rows):
            return await super().get_online_features_async(
                config,
                features,
                entity_rows,
                registry,
                project,
                full_feature_names,
                include_feature_view_version_metadata,
            )
        request = plan.bind(entity_rows)
        replies = await read_async(await self.online_store.client_async(config), request)
        return ColumnarOnlineResponse(request.result(replies, to_us(feast_compat.utc_now())))


def _has_protos(entity_rows: Any) -> bool:
    """Entity values given as Feast protos (``RepeatedValue`` columns or ``Value`` items, as Feast's
    gRPC server passes them): Feast's own path reads those."""
    if isinstance(entity_rows, Mapping):
        columns = entity_rows.values()
        return any(
            isinstance(c, RepeatedValue)
            or (isinstance(c, (list, tuple)) and len(c) > 0 and isinstance(c[0], ValueProto))
            for c in columns
        )
    first = entity_rows[0] if isinstance(entity_rows, Sequence) and entity_rows else None
    return isinstance(first, Mapping) and any(isinstance(v, ValueProto) for v in first.values())


def _missing(commands: list, replies: list) -> list:
    """Replies with Redis errors (a key holding another type than a hash) as absent rows."""
    for i, reply in enumerate(replies):
        if isinstance(reply, Exception):
            observe.log.warning("reading %s failed: %s; served as NOT_FOUND", commands[i][0], first_line(reply))
            replies[i] = [None] * len(commands[i][1])
    return replies


@contextlib.contextmanager
def _unavailable_on_redis_errors() -> Iterator[None]:
    """A Redis failure of a read, counted and raised as ``StoreUnavailableError`` (HTTP 503)."""
    try:
        yield
    except RedisError as exc:
        observe.redis_error(exc)
        raise StoreUnavailableError(f"the online store (Redis) did not answer: {first_line(exc)}") from exc


def read_sync(client: Any, request: BoundRequest) -> list:
    """Every HMGET of ``request`` in one pipelined round trip (sync client)."""
    commands = request.commands()
    with _unavailable_on_redis_errors():
        pipe = client.pipeline(transaction=False)
        for key, fields in commands:
            pipe.hmget(key, fields)
        return _missing(commands, pipe.execute(raise_on_error=False))


async def read_async(client: Any, request: BoundRequest) -> list:
    """``read_sync`` on an asyncio client. On a plain (non-cluster) client the commands go
    through ``PackedReads``; a cluster goes through redis-py's pipeline."""
    commands = request.commands()
    with _unavailable_on_redis_errors():
        if _pack is not None and isinstance(client, AsyncRedis):
            reads = client.__dict__.get("_featurelib_reads")
            if reads is None:
                reads = client.__dict__["_featurelib_reads"] = PackedReads(client.connection_pool)
            return _missing(commands, await reads.hmget(commands))
        async with client.pipeline(transaction=False) as pipe:
            for key, fields in commands:
                pipe.hmget(key, fields)
            return _missing(commands, await pipe.execute(raise_on_error=False))


class PackedReads:
    """Pipelined HMGETs at a third of the cost of redis-py's asyncio pipeline: the commands are
    packed by hiredis and written at once on a connection of the client's pool kept idle here
    (the pool's check of a connection on every checkout, and redis-py's pipeline objects, cost
    more than the read itself), and read back by redis-py's parser. A connection is reused only
    after a complete exchange: a timeout, cancellation or error closes it."""

    def __init__(self, pool: Any):
        self.pool = pool
        self.idle: list = []

    async def hmget(self, commands: list[tuple[str, list[str]]]) -> list:
        payload = b"".join([_pack(("HMGET", key, *fields)) for key, fields in commands])
        for attempt in (1, 2):
            conn = self.idle.pop() if self.idle else self.pool.make_connection()
            try:
                await conn.send_packed_command(payload, check_health=False)
                replies: list = []
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # one reply was an error; the others follow on the connection
                        replies.append(exc)
            except RedisConnectionError:
                await conn.disconnect()
                if attempt == 2:  # an idle connection the server had closed gets one retry on a new one
                    raise
                continue
            except BaseException:
                await conn.disconnect()
                raise
            self.idle.append(conn)
            return replies
        return []
