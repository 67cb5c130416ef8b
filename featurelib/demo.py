"""The main job end to end (``make demo``): events -> features -> Feast -> online and offline reads.

1. Make sure Redis answers at ``REDIS_CONNECTION_STRING`` (default ``localhost:6379``);
   if nothing answers on a local address, start a private ``redis-server`` there.
2. Generate seeded synthetic raw events ending now (``data/raw``).
3. Compute every feature view's rows (``data/features``).
4. ``feast apply`` (after ``feast teardown`` of a previous demo run, so a re-run
   replaces everything instead of mixing two runs' data).
5. ``feast materialize-incremental <now>``.
6. Print the online features of ``card_12345`` and a small leakage-free training frame.
7. ``python feature_utils.py validate``.

Running it again regenerates the same data set relative to the new "now"; nothing is
appended twice.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pandas as pd

from featurelib import paths
from featurelib.online_store import RedisHashOnlineStoreConfig
from featurelib.redis_connection import connection_params, connection_string_from_env, make_client
from featurelib.redis_server import RedisServer, ping

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


def run(args: list[str], cwd: Path) -> None:
    click.secho(f"$ {' '.join(args)}", fg="cyan")
    subprocess.run(args, cwd=cwd, check=True)


def ensure_redis(repo: Path) -> str:
    """Return the connection string in use, starting a private server if needed."""
    cs = connection_string_from_env()
    nodes, params = connection_params(RedisHashOnlineStoreConfig(connection_string=cs))
    host, port = nodes[0]["host"], int(nodes[0]["port"])
    if ping(host, port, params.get("password")):
        click.echo(f"Redis answers at {host}:{port}")
        return cs
    if host not in LOCAL_HOSTS:
        raise click.ClickException(f"Redis at {host}:{port} does not answer; fix REDIS_CONNECTION_STRING")
    server = RedisServer(port=port, workdir=paths.data_dir(repo) / "redis", daemon=True, durable=True).start()
    click.echo(f"Nothing answered at {host}:{port}: started a private redis-server ({server.binary}) there, with an\n"
               f"append-only file in {server.workdir} (appendfsync everysec: the stream backlog survives a restart).\n"
               f"It keeps running after the demo; stop it with `make redis-stop`.")
    return cs


NEXT_STEPS = """
Try next (README.md has each one):
  source .venv/bin/activate
  python feature_utils.py serve         # Feast's HTTP API on :6566 (README: Feature server API, curl)
  feast ui                              # browse entities, views and services on :8888
  README "Scoring a transaction"        # the SDK reading the fraud_detection service
  README "Integration with stream processing"   # replay events through the stream processor
  python feature_utils.py validate-pit --entity-id card_12345 --entity-type card   # online = offline?"""


def clear_stream_leftovers(repo: Path) -> None:
    """Remove what a stream replay left from an earlier run, so the demo starts over from its own
    generated events: events landed under ``data/raw/<kind>/stream/``, ``data/quarantine/``, and in
    Redis the event streams (with their consumer groups) and their processors' leases."""
    import shutil

    from featurelib.stream.events import STREAMS
    from featurelib.stream.lease import lease_key

    removed = [d for d in sorted(paths.raw_dir(repo).glob("*/stream")) + [paths.data_dir(repo) / "quarantine"]
               if d.is_dir()]
    for directory in removed:
        shutil.rmtree(directory)
    client = make_client(RedisHashOnlineStoreConfig(connection_string=connection_string_from_env()))
    keys = [k for stream in STREAMS.values() for k in (stream, *client.scan_iter(lease_key(stream, "*")))]
    deleted = client.delete(*keys)
    if removed or deleted:
        click.echo(f"Removed an earlier stream replay: {len(removed)} director{'y' if len(removed) == 1 else 'ies'} "
                   f"of landed or quarantined events, {deleted} Redis key(s) (event streams and leases).")


def show_online(repo: Path) -> None:
    from feast import FeatureStore

    fs = FeatureStore(repo_path=str(repo))
    fraud_features = fs.get_online_features(
        features=[
            "transaction_stats_5m:txn_count_5m",
            "transaction_stats_5m:amount_avg_5m",
            "transaction_stats_5m:velocity_score",
        ],
        entity_rows=[{"card_id": "card_12345"}],
    ).to_dict()
    click.echo(f"Fraud features: {fraud_features}")


def show_training(repo: Path) -> None:
    from featurelib.repo import load_store
    from featurelib.training import training_frame, transaction_labels

    store = load_store(repo)
    labels = transaction_labels(paths.raw_dir(repo))
    sample = pd.concat([labels[labels.is_fraud].tail(3), labels[~labels.is_fraud].tail(3)])
    frame = training_frame(store, sample, store.get_feature_service("fraud_detection"))
    cols = ["event_timestamp", "card_id", "is_fraud", "txn_count_5m", "velocity_score", "amount_vs_avg_5m_ratio",
            "is_new_country_24h", "minutes_since_last_txn", "device_distinct_cards_24h"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        click.echo(f"Training frame ({len(labels):,} labelled transactions available; features as of 1 µs "
                   f"before each transaction):\n{frame[cols].to_string(index=False)}")


@click.command()
@click.option("--cards", default=5_000, show_default=True, help="Number of cards (users = cards / 1.4).")
@click.option("--days", default=7.0, show_default=True, help="Days of history, ending now.")
@click.option("--seed", default=42, show_default=True)
@paths.repo_option("Feature repository.")
def main(cards: int, days: float, seed: int, repo: Path) -> None:
    """Run the feature store's main job end to end."""
    from featurelib.batch import build_all
    from featurelib.generate import GeneratorConfig, generate

    started = time.perf_counter()
    bin_dir = Path(sys.executable).parent
    feast = str(bin_dir / "feast")

    step("1. Redis")
    ensure_redis(repo)

    step("2. Generate raw events")
    clear_stream_leftovers(repo)
    cfg = GeneratorConfig(n_cards=cards, days=days, seed=seed)
    generate(cfg, paths.raw_dir(repo), progress=click.echo)

    step("3. Compute features (exact windows, one row per change point)")
    for b in build_all(paths.raw_dir(repo), paths.features_dir(repo)):
        click.echo(f"{b.view:<22} {b.events:>9,} events -> {b.rows:>10,} rows in {b.seconds:5.2f}s "
                   f"({b.events / max(b.seconds, 1e-9):,.0f} events/s)")

    step("4. Register definitions")
    if paths.registry_path(repo).exists():
        run([feast, "teardown"], repo)
    run([feast, "apply"], repo)

    step("5. Load the online store")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    run([feast, "materialize-incremental", now.strftime("%Y-%m-%dT%H:%M:%S")], repo)

    step("6. Read features")
    show_online(repo)
    show_training(repo)

    step("7. Validate")
    run([sys.executable, "feature_utils.py", "validate"], repo)
    click.secho(f"\nDemo finished in {timedelta(seconds=round(time.perf_counter() - started))}.", bold=True)
    click.echo(NEXT_STEPS)


if __name__ == "__main__":
    main()
