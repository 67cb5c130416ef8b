"""Feature rows -> the stream contract's write commands, through ``featurelib.arrow_rows``."""

from __future__ import annotations

import pyarrow as pa
from feast import FeatureStore

from featurelib import arrow_rows
from featurelib.stream.core import latest_rows


class RowWriter:
    """Writes the newest emitted row of each entity through the configured online store."""

    def __init__(self, store: FeatureStore):
        self.store = store
        self.config = store.config
        self.online = store._get_provider().online_store
        self.prefix = self.config.online_store.key_prefix
        self.views = {v.name: v for v in store.list_feature_views()}

    def commands(self, view_name: str, rows: pa.Table, now_us: int) -> list[tuple[str, list]]:
        """Commands for the last row of each entity in ``rows`` (sorted by entity, then time),
        created at ``now_us``."""
        view = self.views[view_name]
        latest = latest_rows(rows, view.join_keys[0])
        life_ms = self.online.life_ms(self.config.online_store, view)
        chunks = arrow_rows.write_commands(view, latest, self.prefix, now_us, life_ms, max(latest.num_rows, 1))
        if chunks is None:
            raise ValueError(f"rows of {view_name} lack a feature column: {rows.column_names}")
        return [c for chunk in chunks for c in chunk]

    def all_commands(self, rows_by_view: dict[str, pa.Table], now_us: int,
                     latest: dict[str, list[dict]] | None = None) -> list[tuple[str, list]]:
        """Commands for every view's rows; from ``latest[view]`` (the last row of each entity as
        dicts) where the step has them, which gives the same commands without Arrow."""
        out = []
        for view, rows in rows_by_view.items():
            commands = None
            if latest and view in latest:
                table = self.views[view]
                commands = arrow_rows.row_commands(table, latest[view], self.prefix, now_us,
                                                   self.online.life_ms(self.config.online_store, table))
            out += commands if commands is not None else self.commands(view, rows, now_us)
        return out

    @property
    def client(self):
        """The online store's Redis client, which the writes use."""
        return self.online.client(self.config)

    def send(self, commands: list[tuple[str, list]]) -> list[int]:
        """Write ``commands`` through the contract's script, pipelined; returns the script's
        result per row (1 written, 0 a newer row kept, negative refused: ``contract``)."""
        if not commands:
            return []
        return [int(r) for r in self.online.write_rows(self.config, commands)]
