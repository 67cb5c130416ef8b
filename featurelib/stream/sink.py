"""Feature rows -> the stream contract's write commands (``featurelib.arrow_rows``), written by
the contract's one writer (``featurelib.redis_writer``) on a client of the online store's
settings; Feast's provider is not involved."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore

from featurelib import arrow_rows
from featurelib.online_store import RedisHashOnlineStoreConfig
from featurelib.redis_connection import client_options, make_client
from featurelib.redis_writer import RedisRowWriter


class RowWriter:
    """Writes the newest emitted row of each entity of each view, as the online store would."""

    def __init__(self, store: FeatureStore):
        self.settings: RedisHashOnlineStoreConfig = store.config.online_store
        if not isinstance(self.settings, RedisHashOnlineStoreConfig):
            raise ValueError("the stream processor writes the stream contract: it needs online_store type "
                             "featurelib.online_store.RedisHashOnlineStore")
        self.prefix = self.settings.key_prefix
        self.views = {v.name: v for v in store.list_feature_views()}
        self._join_key = {v.name: v.join_keys[0] for v in self.views.values()}  # Feast's property checks types per call
        self.client = make_client(self.settings, **client_options(self.settings))
        """The Redis client the writes use."""
        self._writer = RedisRowWriter()

    def commands(self, view_name: str, rows: pa.Table, now_us: int) -> list[tuple[str, list]]:
        """Commands for the last row of each entity in ``rows`` (sorted by entity, then time),
        created at ``now_us``."""
        view = self.views[view_name]
        small = rows.num_rows <= arrow_rows.SMALL_COLUMN  # a live step: keep the last command of each key instead
        latest = rows if small else latest_rows(rows, self._join_key[view_name])
        chunks = arrow_rows.write_commands(view, latest, self.prefix, now_us, self.settings.life_ms(view),
                                           max(latest.num_rows, 1))
        if chunks is None:
            raise ValueError(f"rows of {view_name} lack a feature column: {rows.column_names}")
        commands = [c for chunk in chunks for c in chunk]
        return list(dict(commands).items()) if small else commands

    def all_commands(self, rows_by_view: dict[str, pa.Table], now_us: int) -> list[tuple[str, list]]:
        """Commands for the newest row of each entity of every view."""
        return [c for view, rows in rows_by_view.items() for c in self.commands(view, rows, now_us)]

    def send(self, commands: list[tuple[str, list]]) -> list[int]:
        """Write ``commands`` through the contract's script, pipelined; returns the script's
        result per row (1 written, 0 a newer row kept, negative refused: ``contract``)."""
        return self._writer.write(self.client, commands)


def latest_rows(rows: pa.Table, key: str) -> pa.Table:
    """The last row of each entity (rows are sorted by entity, then time). ``RowWriter.commands``
    keeps the last command per key instead for a few rows."""
    ids = rows.column(key).combine_chunks()
    last = np.ones(rows.num_rows, dtype=bool)
    if rows.num_rows > 1:
        last[:-1] = np.asarray(pc.not_equal(ids[1:], ids[:-1]))
    return rows.filter(pa.array(last))
