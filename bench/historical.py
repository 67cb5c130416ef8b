#!/usr/bin/env python
"""Training-set benchmark: ``get_historical_features(...).to_df()`` on the demo data.

Generates the demo's volume (5,000 cards, 7 days, seeded), runs the batch job, and copies the
feature repository three times, differing only in ``offline_store``: this repository's
(``featurelib.offline_store.ParquetOfflineStore``, DuckDB ``ASOF JOIN``), Feast's ``duckdb``
store and Feast's ``file`` store. Entity rows are random transactions of the generated data at
random instants of the 7 days, with the ``fraud_detection`` request fields. Each retrieval runs
in a fresh subprocess; the table gives wall seconds (``get_historical_features`` through
``to_df()``) and the subprocess's peak RSS. Feast's stores are run up to ``--feast-max-rows``
(their memory grows faster than the rows: 10M rows would not fit a 24 GB machine).

    python bench/historical.py                                   # 100k, 1M, 10M
    python bench/historical.py --sizes 100000 --feast-max-rows 100000

Writes bench/results/historical.{json,md} and historical.png (time and memory against rows).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
from report import save  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", ".feastignore"]
STORES = {"this repository (ASOF)": "featurelib.offline_store.ParquetOfflineStore", "Feast duckdb": "duckdb",
          "Feast file": "file"}
SCOPES = {"transaction_stats_5m": "view", "fraud_detection": "service"}
CHILD = """
import json, resource, sys, time
import pandas as pd
from feast import FeatureStore
repo, entities, scope = sys.argv[1], sys.argv[2], sys.argv[3]
store = FeatureStore(repo_path=repo)
entity_df = pd.read_parquet(entities)
if scope == "view":
    features = [f"transaction_stats_5m:{f.name}" for f in store.get_feature_view("transaction_stats_5m").features]
else:
    features = store.get_feature_service("fraud_detection")
started = time.perf_counter()
df = store.get_historical_features(entity_df=entity_df, features=features).to_df()
seconds = time.perf_counter() - started
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "rows": len(df), "columns": len(df.columns),
                  "non_null": int(df.notna().to_numpy().sum())}))
"""


def _prepare(root: Path, cards: int, days: int) -> Path:
    """Raw events, feature Parquet and the registry, in ``root`` (a copy of the repository)."""
    from featurelib import paths
    from featurelib.batch import build_all
    from featurelib.generate import GeneratorConfig, generate
    from featurelib.timeutil import to_us

    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(ROOT / name, repo / name)
    cfg = GeneratorConfig(n_cards=cards, days=days, seed=1, end_us=to_us("2026-11-26T00:00:00Z"))
    generate(cfg, paths.raw_dir(repo))
    build_all(paths.raw_dir(repo), paths.features_dir(repo))
    return repo


def _variant(repo: Path, name: str, store_type: str) -> Path:
    """The repository with ``offline_store: type: store_type``, sharing its data directory."""
    import yaml

    target = repo.parent / name
    target.mkdir()
    for item in repo.iterdir():
        if item.name == "data":
            (target / "data").mkdir()
            (target / "data" / "features").symlink_to(item / "features")
        elif item.is_file():
            shutil.copy2(item, target / item.name)
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["offline_store"] = {"type": store_type}
    config["online_store"] = {"type": "sqlite", "path": str(target / "data" / "online.db")}
    (target / "feature_store.yaml").write_text(yaml.safe_dump(config))
    subprocess.run([sys.executable, "-m", "feast.cli.cli", "apply"], cwd=target, check=True, capture_output=True)
    return target


def _entity_rows(repo: Path, rows: int, out: Path) -> Path:
    """``rows`` random transactions (card, device, request fields) at random instants of the data's span."""
    import numpy as np
    import pandas as pd

    from featurelib import paths

    txns = pd.read_parquet(paths.raw_dir(repo) / "transactions")
    rng = np.random.default_rng(rows)
    pick = txns.iloc[rng.integers(0, len(txns), rows)].reset_index(drop=True)
    low, high = txns["event_timestamp"].min().value // 1000, txns["event_timestamp"].max().value // 1000
    us = rng.integers(low, high, rows)
    frame = pd.DataFrame({
        "card_id": pick["card_id"], "device_id": pick["device_id"],
        "event_timestamp": pd.to_datetime(us, unit="us", utc=True),
        "txn_amount": pick["amount_cents"] / 100.0, "txn_country": pick["country"],
        "txn_merchant_category": pick["merchant_category"], "txn_unix_us": us,
    })
    frame.to_parquet(out)
    return out


def _measure(repo: Path, entities: Path, scope: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(repo), str(entities), scope], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr.strip() else f"exit {proc.returncode}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"seconds": round(out["seconds"], 2), "peak_mb": round(out["peak_mb"]), "rows": out["rows"],
            "non_null": out["non_null"]}


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for store in STORES:
        for scope, style in (("view", "-"), ("service", "--")):
            points = [r for r in results if r["store"] == store and r["scope"] == scope and "seconds" in r]
            if not points:
                continue
            xs = [r["entity_rows"] for r in points]
            label = f"{store}, {'one view' if scope == 'view' else 'fraud_detection'}"
            axes[0].plot(xs, [r["seconds"] for r in points], style, marker="o", label=label)
            axes[1].plot(xs, [r["peak_mb"] / 1024 for r in points], style, marker="o", label=label)
    for ax, ylabel in zip(axes, ("seconds", "peak RSS (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("entity rows")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("get_historical_features(...).to_df(), demo data (5,000 cards, 7 days)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@click.command()
@click.option("--sizes", default="100000,1000000,10000000", show_default=True, help="Entity rows, comma separated.")
@click.option("--feast-max-rows", default=1_000_000, show_default=True,
              help="Largest size Feast's own stores are run at.")
@click.option("--cards", default=5000, show_default=True)
@click.option("--days", default=7, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(sizes: str, feast_max_rows: int, cards: int, days: int, out: Path) -> None:
    """Measure point-in-time joins: this store against Feast's DuckDB and file stores."""
    results = []
    with tempfile.TemporaryDirectory(prefix="historical-") as tmp:
        click.echo(f"generating {cards:,} cards over {days} days and building the features ...", err=True)
        repo = _prepare(Path(tmp), cards, days)
        variants = {name: _variant(repo, f"store{i}", store_type) for i, (name, store_type) in enumerate(STORES.items())}
        for size in (int(float(s)) for s in sizes.split(",")):
            entities = _entity_rows(repo, size, Path(tmp) / f"entities-{size}.parquet")
            for scope_name, scope in SCOPES.items():
                for store, variant in variants.items():
                    if store != next(iter(STORES)) and size > feast_max_rows:
                        results.append({"store": store, "scope": scope, "entity_rows": size, "skipped": True})
                        continue
                    click.echo(f"{size:>10,} rows  {scope_name:<22} {store} ...", err=True)
                    result = _measure(variant, entities, scope)
                    results.append({"store": store, "scope": scope, "entity_rows": size, **result})
                    click.echo(f"           {result}", err=True)
    table = ["| entity rows | features | store | seconds | peak RSS | rows returned |", "|---:|---|---|---:|---:|---:|"]
    for r in results:
        what = "transaction_stats_5m" if r["scope"] == "view" else "fraud_detection"
        if r.get("skipped"):
            table.append(f"| {r['entity_rows']:,} | {what} | {r['store']} | not run | | |")
        elif "error" in r:
            table.append(f"| {r['entity_rows']:,} | {what} | {r['store']} | failed: {r['error']} | | |")
        else:
            table.append(f"| {r['entity_rows']:,} | {what} | {r['store']} | {r['seconds']:.2f} | "
                         f"{r['peak_mb']:,} MB | {r['rows']:,} |")
    save(out, "historical", results, table)
    _plot(results, out / "historical.png")


if __name__ == "__main__":
    main()
