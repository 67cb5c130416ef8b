"""Feature rows -> the stream contract's write commands (``featurelib.contract``), vectorized."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore

from featurelib import contract
from featurelib.engine import _us
from featurelib.stream.core import latest_rows


def escape_ids(ids: pa.Array) -> pa.Array:
    for raw, encoded in (("%", "%25"), (":", "%3A"), ("+", "%2B")):
        ids = pc.replace_substring(ids, raw, encoded)
    return ids


def _text(column: pa.ChunkedArray | pa.Array) -> list:
    """The contract's text of every value (None for null)."""
    t = column.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [None if v is None else json.dumps(v, separators=(",", ":")) for v in column.to_pylist()]
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return column.to_pylist()
    return pc.cast(column, pa.string()).to_pylist()  # shortest round-trip floats; true/false; decimal ints


class RowWriter:
    """Writes the newest emitted row of each entity through the configured online store."""

    def __init__(self, store: FeatureStore):
        self.store = store
        self.config = store.config
        self.online = store._get_provider().online_store
        self.prefix = self.config.online_store.key_prefix
        self.grace_s = self.config.online_store.ttl_grace_seconds
        self.views = {v.name: v for v in store.list_feature_views()}

    def commands(self, view_name: str, rows: pa.Table, now_us: int) -> list[tuple[str, list]]:
        view = self.views[view_name]
        key = view.join_keys[0]
        latest = latest_rows(rows, key)
        event_us = _us(latest.column("event_timestamp"))
        ttl_s = view.ttl.total_seconds() if view.ttl else 0
        expire = np.zeros(len(event_us), np.int64) if not ttl_s else event_us // 1000 + int((ttl_s + self.grace_s) * 1000)
        live = (expire == 0) | (expire > now_us // 1000)
        if not live.all():
            latest, event_us, expire = latest.filter(pa.array(live)), event_us[live], expire[live]
        keys = pc.binary_join_element_wise(f"{self.prefix}:{contract.entity_type([key])}:",
                                           escape_ids(latest.column(key).combine_chunks()), f":{view_name}", "")
        names = [f.name for f in view.features]
        texts = [_text(latest.column(n)) for n in names]
        commands = []
        for i, k in enumerate(keys.to_pylist()):
            args = [int(event_us[i]), now_us, int(expire[i]), 0]
            for name, col in zip(names, texts):
                if col[i] is not None:
                    args.append(name)
                    args.append(col[i])
            args[3] = (len(args) - 4) // 2
            commands.append((k, args))
        return commands

    def write(self, rows_by_view: dict[str, pa.Table], now_us: int) -> int:
        commands = [c for view, rows in rows_by_view.items() for c in self.commands(view, rows, now_us)]
        if commands:
            self.online.write_rows(self.config, commands)
        return len(commands)
