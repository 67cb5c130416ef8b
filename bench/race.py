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

import sys
import tempfile
from pathlib import Path

import click
from report import save  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

WRITES = 3000  # per writer and round


def race(store_type: str, seed: int, tmp: Path) -> dict:
    from featurelib.redis_server import RedisServer
    from tests.toy import toy_store, two_writer_race

    with RedisServer() as server:
        store = toy_store(tmp / f"{store_type.rsplit('.', 1)[-1]}-{seed}", server.connection_string, store_type=store_type)
        held, newest = two_writer_race(store, seeds=(seed * 10 + 1, seed * 10 + 2), writes=WRITES)
        stale = sum(1 for k, n in held.items() if n != newest[k])
        return {"keys": len(held), "writes": 2 * WRITES, "keys_left_with_an_older_row": stale}


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
    lines = ["| store | rounds | writes per round | keys per round | keys left with an older row (per round) |",
             "|---|---:|---:|---:|---|"]
    for name, rs in results.items():
        lines.append(f"| {name} | {len(rs)} | {rs[0]['writes']:,} | {rs[0]['keys']} | "
                     f"{', '.join(str(r['keys_left_with_an_older_row']) for r in rs)} |")
    save(out, "race", results, lines)


if __name__ == "__main__":
    main()
