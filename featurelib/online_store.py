"""The Redis online store selected in ``feature_store.yaml``: the stream contract, as a Feast plugin.

``type: featurelib.online_store.RedisHashOnlineStore`` keeps every (entity, feature view)
as one Redis hash at ``features:{entity_type}:{entity_id}:{feature_view}`` with plain
feature names and text values, as ``featurelib.contract`` and ``docs/STREAM_CONTRACT.md``
define, so stream jobs in any language write the very rows Feast serves.

* Writes go through one Lua script per row (``contract.WRITE_SCRIPT``), pipelined by the
  contract's one writer (``featurelib.redis_writer``, which the stream processor uses too): the
  stored event timestamp (then created timestamp) is compared and the row replaced in one
  atomic step, so newer always wins, equal timestamps are idempotent, and racing writers
  cannot leave an older row behind. ``feast materialize`` hands the store Arrow batches
  (``online_write_arrow``, through ``featurelib.materialization``).
* The script refuses a row stamped more than ``contract.MAX_AHEAD_US`` (60 s) ahead of the
  Redis server's clock, or not stamped with a number. Feast's writes (push, materialize,
  ``write_to_online_store``) apply every other row of the call, then raise
  ``errors.RowsRefusedError`` (HTTP 422 from ``feast serve``, one line and exit 2 from the
  CLI); the stream processor takes the per-row results from the writer instead.
* Reads fetch every view of a request in one pipelined round trip (``HMGET`` of the
  requested fields and ``_event_ts``). An entity without a hash is NOT_FOUND, and so is a
  row stamped more than ``contract.MAX_AHEAD_US`` ahead of the reader's clock; a row
  older than its view's ``ttl`` is null with status OUTSIDE_MAX_AGE; an absent field
  is a null value.
* Every hash expires ``ttl`` (plus ``ttl_grace_seconds``) after its event timestamp, or
  ``key_ttl_seconds`` after it when that is set.
* ``update`` claims the key prefix for the project (``contract.PREFIX_OWNERS_KEY``; another
  project's claim is a ``KeyPrefixOwnedError``) and deletes the hashes of feature views
  removed from the repository; ``teardown`` deletes every hash under the prefix and releases it.
* Topologies ``redis``, ``redis_cluster`` and ``redis_sentinel`` as in Feast's own store
  (clients: ``featurelib.redis_connection``, secrets from the environment only).

A ``connection_string`` still holding ``${`` (Feast's ``expandvars`` leaves an unset variable as
text) counts as unset. Importing this module applies ``featurelib.feast_compat``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from feast import Entity, FeatureView, RepoConfig
from feast.infra.online_stores.helpers import compute_versioned_name
from feast.infra.online_stores.online_store import OnlineStore
from feast.infra.online_stores.redis import RedisType
from feast.infra.supported_async_methods import SupportedAsyncMethods
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import FeastConfigBaseModel
from pydantic import Field, StrictStr, field_validator

from featurelib import arrow_rows, contract, errors, feast_compat
from featurelib.proto_rows import ViewCodecs, decode_rows, key_of, view_ttl_seconds
from featurelib.redis_connection import client_options, connection_string_from_env, make_client
from featurelib.redis_writer import RedisRowWriter, Refusals
from featurelib.timeutil import to_us

_UNEXPANDED = re.compile(r"\$\{[^}]*\}")


class RedisHashOnlineStoreConfig(FeastConfigBaseModel):
    """Configuration of ``RedisHashOnlineStore`` (all optional)."""

    type: StrictStr = "featurelib.online_store.RedisHashOnlineStore"
    redis_type: RedisType = RedisType.redis
    """``redis``, ``redis_cluster`` or ``redis_sentinel``."""
    sentinel_master: StrictStr = "mymaster"
    connection_string: StrictStr = Field(default_factory=connection_string_from_env)
    """Feast's format: ``host:port[,host:port...][,password=...][,ssl=true][,db=N]``."""
    key_prefix: StrictStr = contract.DEFAULT_PREFIX
    """First part of every key; one Feast project per prefix (or per Redis database)."""
    ttl_grace_seconds: int = 3600
    """How long a hash outlives its view's TTL, so reads report OUTSIDE_MAX_AGE, not NOT_FOUND."""
    key_ttl_seconds: int | None = None
    """Feast's Redis option: when set, every hash lives this long after its row's event time,
    instead of the view's TTL plus ``ttl_grace_seconds``. (Feast counts from the write; for the
    fresh rows streams and materialization write, the two agree.) Reads still apply the view TTL."""
    write_batch_size: int = 2000
    """Rows per pipelined round trip when writing."""
    socket_timeout_seconds: float = 10.0
    """How long one exchange with Redis through Feast may wait; a read or write fails after two
    (``errors.StoreUnavailableError`` on the read path). Lower it for inference services."""
    connect_timeout_seconds: float = 5.0
    """How long connecting to Redis may take."""

    def life_ms(self, view: Any) -> int:
        """How long a hash of ``view`` lives after its row's event time, ms (0: it never expires):
        ``key_ttl_seconds`` when set, else the view's TTL plus ``ttl_grace_seconds``."""
        if self.key_ttl_seconds:
            return int(self.key_ttl_seconds) * 1000
        return contract.life_ms(view_ttl_seconds(view), self.ttl_grace_seconds)

    @field_validator("connection_string", mode="before")
    @classmethod
    def _unexpanded_means_unset(cls, value: object) -> object:
        if isinstance(value, str) and (not value.strip() or _UNEXPANDED.search(value)):
            return connection_string_from_env()
        return value


def _now_us() -> int:
    """The store's clock (Feast's), integer microseconds since the epoch."""
    return _us_of(feast_compat.utc_now())


def _us_of(ts: datetime | None) -> int:
    """Exact integer microseconds (naive datetimes are UTC); 0 for None or NaT (a null created
    timestamp from pandas)."""
    return 0 if ts is None or ts != ts else to_us(ts)


def stored_name(config: RepoConfig, table: FeatureView) -> str:
    """The view's name in its keys: Feast's versioned name, ``<view>_v<N>``, when the registry
    enables online feature-view versioning (``registry: enable_online_feature_view_versioning``)
    and the view, or the request's projection, carries version ``N`` > 0; else the view's name.
    Each version's rows live in their own hashes, as in Feast's own store."""
    return compute_versioned_name(table, config.registry.enable_online_feature_view_versioning)


class RedisHashOnlineStore(OnlineStore):
    """Feature rows as plain Redis hashes that any stream job can write (see module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._client: Any = None
        self._client_async: Any = None
        self._writer = RedisRowWriter()

    @property
    def async_supported(self) -> SupportedAsyncMethods:
        return SupportedAsyncMethods(read=True, write=True)

    # ------------------------------------------------------------------ clients

    def client(self, config: RepoConfig):
        return self._get_client(config.online_store)

    async def client_async(self, config: RepoConfig):
        if self._client_async is None:
            self._client_async = make_client(config.online_store, asynchronous=True,
                                             **client_options(config.online_store, asynchronous=True))
        return self._client_async

    def _get_client(self, online_store_config: RedisHashOnlineStoreConfig):
        """Feast's name for it (used by ``featurelib.repo.redis_client``)."""
        if self._client is None:
            self._client = make_client(online_store_config, **client_options(online_store_config))
        return self._client

    # ------------------------------------------------------------------ writes

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Write Feast's rows through the script; every valid row is applied, then
        ``errors.RowsRefusedError`` if the script refused any (stamped too far ahead)."""
        client = self.client(config)
        refusals = Refusals(table.name)
        for commands in self._write_commands(config, table, data):
            refusals.add(commands, self._writer.write(client, commands))
            if progress:
                progress(len(commands))
        refusals.raise_if_any()

    async def online_write_batch_async(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """``online_write_batch`` on the asyncio client (same rows, same refusals)."""
        if config.online_store.redis_type == RedisType.redis_cluster:  # see redis_writer._write_cluster
            import asyncio

            await asyncio.to_thread(self.online_write_batch, config, table, data, progress)
            return
        client = await self.client_async(config)
        refusals = Refusals(table.name)
        for commands in self._write_commands(config, table, data):
            refusals.add(commands, await self._writer.write_async(client, commands))
            if progress:
                progress(len(commands))
        refusals.raise_if_any()

    def online_write_arrow(self, config: RepoConfig, table: FeatureView, batch: pa.Table | pa.RecordBatch) -> None:
        """Write materialized rows straight from an Arrow batch (``featurelib.materialization``
        calls this instead of ``online_write_batch``): the same hashes, without building a
        ``ValueProto`` per value. Views ``arrow_rows`` cannot encode go through Feast's rows.
        Refused rows raise ``errors.RowsRefusedError`` once every other row is written."""
        if isinstance(batch, pa.RecordBatch):
            batch = pa.Table.from_batches([batch])
        cfg: RedisHashOnlineStoreConfig = config.online_store
        commands = None
        if stored_name(config, table) == table.name:  # the Arrow path keys rows by the view's name
            commands = arrow_rows.write_commands(table, batch, cfg.key_prefix, _now_us(), cfg.life_ms(table),
                                                 cfg.write_batch_size)
        if commands is None:
            join_keys = {e.name: e.dtype.to_value_type() for e in table.entity_columns}
            self.online_write_batch(config, table, feast_compat.arrow_to_rows(batch, table, join_keys), None)
            return
        client = self.client(config)
        refusals = Refusals(table.name)
        for chunk in commands:
            refusals.add(chunk, self._writer.write(client, chunk))
        refusals.raise_if_any()

    def _write_commands(self, config: RepoConfig, table: FeatureView, data) -> Iterable[list[tuple[str, list]]]:
        cfg: RedisHashOnlineStoreConfig = config.online_store
        codecs = ViewCodecs(table, cfg.key_prefix, stored_name(config, table))
        now_us = _now_us()
        life_ms = cfg.life_ms(table)
        batch: list[tuple[str, list]] = []
        for entity_key, values, event_ts, created_ts in data:
            event_us = _us_of(event_ts)
            expire_ms = contract.expiry_ms(event_us, life_ms)
            if not contract.is_live(expire_ms, now_us):
                continue  # already expired: Redis would drop it at once, and any older row is gone too
            batch.append((codecs.key(entity_key), codecs.row_args(values, event_us, _us_of(created_ts) or now_us, expire_ms)))
            if len(batch) >= cfg.write_batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    # ------------------------------------------------------------------ reads

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        requested = requested_features or [f.name for f in table.features]
        prefix, name = config.online_store.key_prefix, stored_name(config, table)
        pipe = self.client(config).pipeline(transaction=False)
        for ek in entity_keys:
            pipe.hmget(key_of(prefix, ek, name), [contract.EVENT_TS, *requested])
        rows, _, _ = decode_rows(table, requested, pipe.execute(), _now_us())
        return rows

    async def online_read_async(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: list[str] | None = None,
    ) -> list[tuple[datetime | None, dict[str, ValueProto] | None]]:
        requested = requested_features or [f.name for f in table.features]
        prefix, name = config.online_store.key_prefix, stored_name(config, table)
        client = await self.client_async(config)
        async with client.pipeline(transaction=False) as pipe:
            for ek in entity_keys:
                pipe.hmget(key_of(prefix, ek, name), [contract.EVENT_TS, *requested])
            results = await pipe.execute()
        rows, _, _ = decode_rows(table, requested, results, _now_us())
        return rows

    def _plan_reads(self, config, grouped_refs, join_key_values, entity_name_to_join_key_map):
        prefix = config.online_store.key_prefix
        work = []
        for table, requested in grouped_refs:
            values, idxs, output_len = feast_compat.unique_entities(table, join_key_values, entity_name_to_join_key_map)
            name = stored_name(config, table)
            keys = [key_of(prefix, ek, name) for ek in feast_compat.entity_key_protos(values)]
            work.append((table, list(requested), keys, idxs, output_len))
        return work

    def _populate(self, work, results, response, full_feature_names, include_meta) -> None:
        now_us = _now_us()
        offset = 0
        for table, requested, keys, idxs, output_len in work:
            rows, stale, unparsable = decode_rows(table, requested, results[offset: offset + len(keys)], now_us)
            offset += len(keys)
            feast_compat.populate_response(requested, rows, idxs, response, full_feature_names, table, output_len,
                                           include_meta)
            if stale or unparsable:
                vectors = response.results[len(response.results) - len(requested):]
                destinations = tuple(idxs)
                for row in stale:
                    for out in destinations[row]:
                        for vector in vectors:
                            vector.statuses[out] = FieldStatus.OUTSIDE_MAX_AGE
                for row, feature in unparsable:
                    for out in destinations[row]:
                        vectors[feature].statuses[out] = FieldStatus.NULL_VALUE

    def _read_features_per_fv(self, config, grouped_refs, join_key_values, entity_name_to_join_key_map,
                              online_features_response, full_feature_names, include_feature_view_version_metadata):
        """All views of one request in one pipelined round trip."""
        work = self._plan_reads(config, grouped_refs, join_key_values, entity_name_to_join_key_map)
        pipe = self.client(config).pipeline(transaction=False)
        for _, requested, keys, _, _ in work:
            for key in keys:
                pipe.hmget(key, [contract.EVENT_TS, *requested])
        results = pipe.execute() if len(pipe) else []
        self._populate(work, results, online_features_response, full_feature_names, include_feature_view_version_metadata)

    async def _read_features_per_fv_async(self, config, grouped_refs, join_key_values, entity_name_to_join_key_map,
                                          online_features_response, full_feature_names,
                                          include_feature_view_version_metadata):
        work = self._plan_reads(config, grouped_refs, join_key_values, entity_name_to_join_key_map)
        client = await self.client_async(config)
        results: list = []
        if any(keys for _, _, keys, _, _ in work):
            async with client.pipeline(transaction=False) as pipe:
                for _, requested, keys, _, _ in work:
                    for key in keys:
                        pipe.hmget(key, [contract.EVENT_TS, *requested])
                results = await pipe.execute()
        self._populate(work, results, online_features_response, full_feature_names, include_feature_view_version_metadata)

    # ------------------------------------------------------------------ infrastructure

    def delete_view(self, config: RepoConfig, view_name: str | None, batch: int = 1000) -> int:
        """Delete every hash of ``view_name`` (of every view under the key prefix, for ``None``):
        bounded SCAN, batched UNLINK. Returns the count."""
        client = self.client(config)
        prefix = config.online_store.key_prefix
        deleted, pending = 0, []
        for key in contract.view_keys(client, prefix, view_name, batch):
            pending.append(key)
            if len(pending) >= batch:
                deleted += self._unlink(client, pending)
                pending = []
        if pending:
            deleted += self._unlink(client, pending)
        return deleted

    @staticmethod
    def _unlink(client, keys: list) -> int:
        pipe = client.pipeline(transaction=False)
        for key in keys:  # one key per command: keys may live in different cluster slots
            pipe.unlink(key)
        return sum(pipe.execute())

    def update(
        self,
        config: RepoConfig,
        tables_to_delete: Sequence[FeatureView],
        tables_to_keep: Sequence[FeatureView],
        entities_to_delete: Sequence[Entity],
        entities_to_keep: Sequence[Entity],
        partial: bool,
    ) -> None:
        for table in tables_to_keep:  # fail at `feast apply`, not at the first write
            ViewCodecs(table)
        self.claim_prefix(config)
        self._delete_views(config, tables_to_delete)

    def _delete_views(self, config: RepoConfig, tables: Sequence[FeatureView]) -> None:
        """Delete the hashes of ``tables``, under their plain and their versioned names."""
        for table in tables:
            for name in {table.name, stored_name(config, table)}:
                self.delete_view(config, name)

    def prefix_owner(self, config: RepoConfig) -> str | None:
        """The Feast project that claimed this store's key prefix on this Redis, if any."""
        owner = self.client(config).hget(contract.PREFIX_OWNERS_KEY, config.online_store.key_prefix)
        return owner.decode() if isinstance(owner, bytes) else owner

    def claim_prefix(self, config: RepoConfig) -> None:
        """Record that ``config.project`` owns the key prefix, or raise ``KeyPrefixOwnedError``
        when another project does: two projects on one prefix would read and delete each
        other's rows (keys carry no project)."""
        prefix = config.online_store.key_prefix
        if self.client(config).hsetnx(contract.PREFIX_OWNERS_KEY, prefix, config.project):
            return
        owner = self.prefix_owner(config)
        if owner not in (None, config.project):
            raise errors.KeyPrefixOwnedError(prefix, owner, config.project)

    def teardown(self, config: RepoConfig, tables: Sequence[FeatureView], entities: Sequence[Entity]) -> None:
        """Delete the project's rows: every hash under its key prefix (Feast passes only some of
        its views here), then release the prefix; with no claim recorded (a prefix applied before
        claims existed), the hashes of ``tables``. Refused when another project owns the prefix."""
        owner = self.prefix_owner(config)
        if owner is None:
            self._delete_views(config, tables)
        elif owner == config.project:
            self.delete_view(config, None)
            self.client(config).hdel(contract.PREFIX_OWNERS_KEY, config.online_store.key_prefix)
        else:
            raise errors.KeyPrefixOwnedError(config.online_store.key_prefix, owner, config.project)

    async def close(self) -> None:
        if self._client_async is not None:
            await self._client_async.aclose()
            self._client_async = None


feast_compat.apply()
