#!/usr/bin/env python
"""Online store benchmark: this repository's store, Feast's built-in Redis store, and the raw floor.

Same data, same machine, one run. Each store gets its own private redis-server (same binary,
same settings). Measures:

* write throughput, rows/s: ``feast materialize`` of the same offline rows into an empty
  Redis (median of 3), and the store's
  ``online_write_batch`` alone on pre-built rows (what the store itself costs);
* read latency for the ``fraud_detection`` service through the Feast SDK (``get_online_features``
  with request data, on-demand view included) for 1, 10 and 100 entities, p50 and p99;
* the store's own read (its ``_read_features_per_fv``: keys, one pipelined round trip for
  the service's three stored views, decoding, filling Feast's response) against the raw
  floor: the same ``HMGET``s pipelined with redis-py, nothing decoded.

    python bench/online_store.py                 # 5,000 cards, 2,000 reads per size
    python bench/online_store.py --cards 500 --reads 200

Writes bench/results/online_store.{json,md} and a latency plot (PNG) when matplotlib exists.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import click
import numpy as np
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse
from report import percentiles, save, timed  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", ".feastignore"]
STORED_VIEWS = ["transaction_stats_5m", "card_profile_24h", "device_activity_24h"]


def _repo(dest: Path, raw: Path, online_yaml: str) -> Path:
    dest.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(ROOT / name, dest / name)
    yaml = (dest / "feature_store.yaml").read_text()
    start = yaml.index("online_store:")
    end = yaml.index("# Offline store")
    yaml = yaml[:start] + online_yaml + "\n" + yaml[end:]
    if "type: redis\n" in online_yaml:  # Feast's store gets Feast's own local engine
        start = yaml.index("batch_engine:")
        yaml = yaml[:start] + yaml[yaml.index("materialization:"):]
    (dest / "feature_store.yaml").write_text(yaml)
    (dest / "data").mkdir()
    shutil.copytree(raw / "features", dest / "data" / "features")
    return dest


def _prepare(store, refs: list[str], rows: list[dict]):
    """What Feast computes before it asks a store to read (grouped refs, entity values)."""
    from feast import utils

    columnar = {k: [r[k] for r in rows] for k in ("card_id", "device_id")}
    join_key_values, grouped_refs, name_to_key, *_ = utils._prepare_entities_to_read_from_online_store(
        registry=store.registry, project=store.project, features=refs, entity_values=columnar,
        full_feature_names=False, native_entity_values=True)
    return grouped_refs, join_key_values, name_to_key


def _proto_rows(store, view_name: str, limit: int):
    """The rows materialization hands to online_write_batch, built the way Feast builds them: the
    latest row of each entity up to now (later rows are window exits still to come, which the
    write script refuses)."""
    import pandas as pd
    from feast import ValueType
    from feast.utils import _convert_arrow_to_proto

    view = store.get_feature_view(view_name)
    df = pd.read_parquet(view.batch_source.path)
    df = df[df.event_timestamp <= pd.Timestamp.now(tz="UTC")].groupby(view.join_keys[0]).tail(1)
    df = pd.concat([df] * (limit // max(len(df), 1) + 1)).head(limit)
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    return view, _convert_arrow_to_proto(table, view, {view.join_keys[0]: ValueType.STRING})


@click.command()
@click.option("--cards", default=5_000, show_default=True)
@click.option("--reads", default=2_000, show_default=True, help="Timed reads per batch size and store.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(cards: int, reads: int, out: Path) -> None:
    """Compare write throughput and read latency of the online stores."""
    from feast import FeatureStore

    from featurelib.batch import build_all
    from featurelib.generate import GeneratorConfig, generate
    from featurelib.redis_server import RedisServer

    results: dict = {"cards": cards, "reads": reads}
    with tempfile.TemporaryDirectory(prefix="online-bench-") as tmp, RedisServer() as ours_redis, RedisServer() as feast_redis:
        tmp = Path(tmp)
        end = datetime.now(timezone.utc).replace(microsecond=0)
        cfg = GeneratorConfig(n_cards=cards, days=7, seed=5, end_us=int(end.timestamp() * 1_000_000))
        generate(cfg, tmp / "raw")
        build_all(tmp / "raw", tmp / "raw" / "features", workers=2)
        stores = {
            "this store": _repo(tmp / "ours", tmp / "raw", "online_store:\n  type: featurelib.online_store.RedisHashOnlineStore\n"
                                f"  connection_string: \"{ours_redis.connection_string}\"\n"),
            "Feast redis": _repo(tmp / "feast", tmp / "raw", "online_store:\n  type: redis\n"
                                 f"  connection_string: \"{feast_redis.connection_string}\"\n"),
        }
        fs = {}
        for name, path in stores.items():
            (path / "data_sources.py").write_text((path / "data_sources.py").read_text())
            os.chdir(path)
            store = FeatureStore(repo_path=str(path))
            from featurelib.validation import code_definitions

            contents = code_definitions(path)
            store.apply([*contents.entities, *contents.data_sources, *contents.feature_views,
                         *contents.on_demand_feature_views, *contents.feature_services])
            fs[name] = store
        os.chdir(ROOT)

        # -------- writes
        writes = {}
        for store in fs.values():  # warm up DuckDB and the stores, so that order does not matter
            store.materialize(end - timedelta(minutes=1), end, feature_views=STORED_VIEWS)
        for name, store in fs.items():
            client = (ours_redis if name == "this store" else feast_redis).client()
            runs = []
            for _ in range(3):  # from an empty Redis each time (Feast's store skips rows it already has)
                client.flushall()
                t = time.perf_counter()
                store.materialize(end - timedelta(days=7), end, feature_views=STORED_VIEWS)
                runs.append(time.perf_counter() - t)
            seconds = float(np.median(runs))
            rows = sum(1 for _ in client.scan_iter(count=5000)) if name == "this store" else None
            view, protos = _proto_rows(store, "transaction_stats_5m", 40_000)
            provider = store._get_provider()
            t = time.perf_counter()
            provider.online_write_batch(store.config, view, protos, None)
            batch_seconds = time.perf_counter() - t
            writes[name] = {"materialize_seconds": round(seconds, 2), "online_write_batch_rows": len(protos),
                            "online_write_batch_rows_per_s": round(len(protos) / batch_seconds)}
            if rows:
                writes[name]["materialized_rows"] = rows
        materialized = writes["this store"]["materialized_rows"]
        for w in writes.values():
            w["materialize_rows_per_s"] = round(materialized / w["materialize_seconds"])
        results["writes"] = writes
        click.echo(json.dumps(writes, indent=2), err=True)

        # -------- reads
        rng = np.random.default_rng(1)
        import pandas as pd

        txns = pd.read_parquet(tmp / "raw" / "transactions" / "generated.parquet", columns=["card_id", "device_id"])
        pairs = txns.drop_duplicates("card_id").sample(200, random_state=1).to_dict("records")
        reads_out: dict = {}
        from featurelib import contract

        for size in (1, 10, 100):
            now_us = int(time.time() * 1_000_000)
            entity_rows = [{"card_id": p["card_id"], "device_id": p["device_id"], "txn_amount": 42.0, "txn_country": "US",
                            "txn_merchant_category": "grocery", "txn_unix_us": now_us}
                           for p in (pairs[i] for i in rng.choice(len(pairs), size, replace=False))]
            for name, store in fs.items():
                service = store.get_feature_service("fraud_detection")
                sdk = timed(partial(store.get_online_features, features=service, entity_rows=entity_rows), reads)
                refs = [f"{v}:{f.name}" for v in STORED_VIEWS for f in store.get_feature_view(v).features]
                online = store._get_provider().online_store
                grouped, values, name_to_key = _prepare(store, refs, entity_rows)
                # A fresh copy of the requested lists per call: Feast's store appends to them.
                own = timed(lambda o=online, s=store, g=grouped, v=values, n=name_to_key:
                             o._read_features_per_fv(s.config, [(t, list(f)) for t, f in g], v, n,
                                                     GetOnlineFeaturesResponse(), False, False), reads)
                reads_out.setdefault(f"sdk_fraud_service_{size}", {})[name] = percentiles(sdk)
                reads_out.setdefault(f"store_read_{size}", {})[name] = percentiles(own)
            client = ours_redis.client()
            commands = []
            for r in entity_rows:
                for v in STORED_VIEWS:
                    device = v == "device_activity_24h"
                    fields = [contract.EVENT_TS, *[f.name for f in fs["this store"].get_feature_view(v).features]]
                    commands.append((f"features:{'device' if device else 'card'}:{r['device_id' if device else 'card_id']}:{v}",
                                     fields))

            def raw_floor(c=client, cmds=commands):
                pipe = c.pipeline(transaction=False)
                for key, fields in cmds:
                    pipe.hmget(key, fields)
                pipe.execute()

            reads_out[f"store_read_{size}"]["raw floor (redis-py HMGET pipeline)"] = percentiles(timed(raw_floor, reads))
            click.echo(f"{size} entities: " + json.dumps({k: v for k, v in reads_out.items() if k.endswith(f"_{size}")}), err=True)
        results["reads"] = reads_out

    lines = ["| measurement | this store | Feast redis | raw floor |", "|---|---:|---:|---:|"]
    for key, by_store in results["reads"].items():
        cells = [f"{by_store[s]['p50_ms']} / {by_store[s]['p99_ms']}" if s in by_store else ""
                 for s in ("this store", "Feast redis", "raw floor (redis-py HMGET pipeline)")]
        lines.append(f"| {key.replace('_', ' ')} entities, p50 / p99 ms | " + " | ".join(cells) + " |")
    w = results["writes"]
    lines.append(f"| materialize, rows/s | {w['this store']['materialize_rows_per_s']:,} | "
                 f"{w['Feast redis']['materialize_rows_per_s']:,} | |")
    lines.append(f"| online_write_batch, rows/s | {w['this store']['online_write_batch_rows_per_s']:,} | "
                 f"{w['Feast redis']['online_write_batch_rows_per_s']:,} | |")
    save(out, "online_store", results, lines)


if __name__ == "__main__":
    main()
