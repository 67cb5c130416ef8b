#!/usr/bin/env python
"""Two writers racing: does every key end with the newest row? This store against Feast's.

Two threads write the same 40 keys 3,000 times each, in small batches, with random event
timestamps (the test ``test_race_between_two_writers_keeps_the_newest_row`` does the
same for this store alone). Afterwards every key should hold the row with the highest
timestamp written to it. Feast's built-in store reads the stored timestamps and writes in
a second round trip, so a writer can overwrite a newer row written in between.

    python bench/race.py --rounds 5

Writes bench/results/race.{json,md}.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def race(store_type: str, seed: int, tmp: Path) -> dict:
    from feast import FeatureStore

    from featurelib.redis_server import RedisServer
    from tests.toy import now, read, rows, toy_store

    with RedisServer() as server:
        store = toy_store(tmp / f"{store_type.rsplit('.', 1)[-1]}-{seed}", server.connection_string, store_type=store_type)
        keys = [f"r{i}" for i in range(40)]
        base = now() - timedelta(minutes=30)
        plans = []
        for writer in (1, 2):
            rng = random.Random(seed * 10 + writer)
            plans.append([(rng.choice(keys), rng.randrange(0, 20 * 60 * 1_000_000)) for _ in range(3000)])
        newest: dict[str, int] = {}
        for plan in plans:
            for key, offset in plan:
                newest[key] = max(newest.get(key, -1), offset)

        def writer(plan: list) -> None:
            fs = FeatureStore(repo_path=store.repo_path)
            for start in range(0, len(plan), 25):
                chunk = plan[start:start + 25]
                fs.write_to_online_store("items", rows([k for k, _ in chunk], [base + timedelta(microseconds=o) for _, o in chunk],
                                                       n=[o for _, o in chunk]))

        threads = [threading.Thread(target=writer, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out = read(store, keys, ["items:n"]).to_dict()
        stale = sum(1 for k, n in zip(out["item_id"], out["n"]) if n != newest[k])
        return {"keys": len(keys), "writes": sum(len(p) for p in plans), "keys_left_with_an_older_row": stale}


@click.command()
@click.option("--rounds", default=5, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(rounds: int, out: Path) -> None:
    """Run the race against both stores."""
    stores = {"this store": "featurelib.online_store.RedisHashOnlineStore", "Feast redis": "redis"}
    results: dict = {name: [] for name in stores}
    with tempfile.TemporaryDirectory(prefix="race-") as tmp:
        for seed in range(rounds):
            for name, store_type in stores.items():
                r = race(store_type, seed, Path(tmp))
                results[name].append(r)
                click.echo(f"round {seed}: {name}: {r['keys_left_with_an_older_row']} of {r['keys']} keys left with an older row",
                           err=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "race.json").write_text(json.dumps(results, indent=2))
    lines = ["| store | rounds | writes per round | keys per round | keys left with an older row (per round) |",
             "|---|---:|---:|---:|---|"]
    for name, rs in results.items():
        lines.append(f"| {name} | {len(rs)} | {rs[0]['writes']:,} | {rs[0]['keys']} | "
                     f"{', '.join(str(r['keys_left_with_an_older_row']) for r in rs)} |")
    (out / "race.md").write_text("\n".join(lines) + "\n")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
