"""Connecting to the online store's Redis: the redis-py clients made from its settings
(``online_store:`` in ``feature_store.yaml``, ``featurelib.online_store.RedisHashOnlineStoreConfig``)
for every topology Feast's own store supports, with credentials and TLS from the environment."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from feast.infra.online_stores.redis import RedisType

from featurelib import feast_compat

if TYPE_CHECKING:
    from featurelib.online_store import RedisHashOnlineStoreConfig

DEFAULT_CONNECTION_STRING = "localhost:6379"
CONNECTION_ENV = "REDIS_CONNECTION_STRING"


def connection_string_from_env() -> str:
    """``REDIS_CONNECTION_STRING`` if set and non-empty, else ``localhost:6379``."""
    return os.environ.get(CONNECTION_ENV, "").strip() or DEFAULT_CONNECTION_STRING


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def connection_params(cfg: RedisHashOnlineStoreConfig) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Nodes and client keyword arguments, parsed as Feast's store parses them, with
    ``REDIS_PASSWORD``, ``REDIS_SSL`` and ``REDIS_SSL_CA_CERTS`` from the environment."""
    nodes, params = feast_compat.parse_redis_connection_string(cfg.connection_string)
    if "password" not in params and os.environ.get("REDIS_PASSWORD"):
        params["password"] = os.environ["REDIS_PASSWORD"]
    if _truthy(os.environ.get("REDIS_SSL")):
        params["ssl"] = True
    if os.environ.get("REDIS_SSL_CA_CERTS") and params.get("ssl"):
        params.setdefault("ssl_ca_certs", os.environ["REDIS_SSL_CA_CERTS"])
    return nodes, params


def make_client(cfg: RedisHashOnlineStoreConfig, asynchronous: bool = False, **overrides: Any):
    """A redis-py client (sync or asyncio) for the configured topology; ``overrides`` are client
    keyword arguments (timeouts) on top of the connection string's."""
    if asynchronous:
        from redis import asyncio as redis_mod
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.asyncio.sentinel import Sentinel
    else:
        import redis as redis_mod
        from redis.cluster import ClusterNode, RedisCluster
        from redis.sentinel import Sentinel
    nodes, params = connection_params(cfg)
    params.update(overrides)
    if cfg.redis_type == RedisType.redis_cluster:
        return RedisCluster(startup_nodes=[ClusterNode(n["host"], int(n["port"])) for n in nodes], **params)
    if cfg.redis_type == RedisType.redis_sentinel:
        sentinel = Sentinel([(n["host"], int(n["port"])) for n in nodes], **params)
        return sentinel.master_for(cfg.sentinel_master)
    return redis_mod.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)


def client_options(cfg: RedisHashOnlineStoreConfig, asynchronous: bool = False) -> dict[str, Any]:
    """The store's client options: its timeouts, and one retry at once (a pooled connection that
    Redis closed is replaced), so a read or write fails within two ``socket_timeout_seconds``
    rather than redis-py's default of four attempts with backoff."""
    from redis.backoff import NoBackoff

    if asynchronous:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry
    return {"socket_timeout": cfg.socket_timeout_seconds, "socket_connect_timeout": cfg.connect_timeout_seconds,
            "retry": Retry(NoBackoff(), 1)}
