"""Partitioned streams (``featurelib.stream.partitions``, ``featurelib.stream.partitioned``): the key
grammar and hash, the replay producer's routing, and processors sharing partitions, including the
issue's test: two ``python -m featurelib.stream run --partitions 4`` processes, one killed with
SIGKILL mid-replay, the survivor taking over its partitions; then 0 events lost, 0 landed twice,
and every online value equal to a batch recomputation.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from redis.crc import key_slot

from featurelib import paths
from featurelib.generate import GeneratorConfig, generate
from featurelib.parquet_files import write_table
from featurelib.raw_events import ID_FIELD
from featurelib.redis_server import RedisServer
from featurelib.stream.assignment import fair_share
from featurelib.stream.lease import lease_key
from featurelib.stream.partitioned import PartitionedProcessor
from featurelib.stream.partitions import (
    Lane,
    check_count,
    family_keys,
    is_partitioned_landing,
    lanes,
    partition_of,
    partitions_of,
    routes,
)
from featurelib.stream.processor import ProcessorConfig
from featurelib.stream.replay import replay
from featurelib.timeutil import SECOND, now_us
from tests.conftest import copy_repo, feast_cli, run, set_project
from tests.processes import (
    GROUP,
    STREAMS,
    Processor,
    applied_repo,
    assert_online_equals_batch_per_partition,
    landed_ids,
    private_redis,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)

PARTITIONS = 4

# ----------------------------------------------------------------------------------------- grammar and hash


def test_the_partition_of_an_entity_is_crc32_of_its_utf8_bytes_mod_n() -> None:
    assert partition_of("card_12345", 4) == zlib.crc32(b"card_12345") % 4 == 2  # stable across processes
    assert partition_of("device_100000", 8) == zlib.crc32(b"device_100000") % 8 == 0
    # docs/STREAMING.md's example
    assert routes("events:transactions", "transactions", {"card_id": "card_12345", "device_id": "device_100000"},
                  4) == ["events:transactions:card_id:2", "events:transactions:device_id:0"]
    assert partition_of("café", 3) == zlib.crc32("café".encode()) % 3
    assert partition_of(None, 4) == partition_of("", 4) == 0
    ids = ["card_1", "card_2", None, "card_1", "session_x"]
    assert partitions_of(pa.chunked_array([ids[:2], ids[2:]]), 5).tolist() == [partition_of(i, 5) for i in ids]
    assert partitions_of(pa.array([], pa.string()), 5).tolist() == []


def test_each_stream_has_one_family_per_join_key_and_the_first_lands() -> None:
    assert family_keys("transactions") == ["card_id", "device_id"]
    assert family_keys("clickstream") == ["user_id", "session_id"]
    every = lanes(STREAMS, PARTITIONS)
    assert [lane.stream for lane in every[:5]] == [
        "events:transactions:card_id:0", "events:transactions:card_id:1", "events:transactions:card_id:2",
        "events:transactions:card_id:3", "events:transactions:device_id:0"]
    assert len(every) == 16 and len({lane.stream for lane in every}) == 16
    assert {lane.key for lane in every if lane.lands} == {"card_id", "user_id"}
    repo = Path("/repo")
    card = Lane("transactions", "card_id", 2, 4, "events:transactions:card_id:2")
    device = Lane("transactions", "device_id", 1, 4, "events:transactions:device_id:1")
    assert card.landed_dir(repo) == repo / "data/raw/transactions/stream/card_id-2-of-4"
    assert card.quarantine_dir(repo) == repo / "data/quarantine/transactions/card_id-2-of-4"
    assert device.landed_dir(repo) == repo / "data/stream_state/transactions/device_id-1-of-4/events"
    raw = paths.raw_dir(repo)
    landed = card.landed_dir(repo) / "2026-01-01" / "part-1-0_2-0_abcdef01.parquet"
    assert is_partitioned_landing(landed, raw, "transactions", 4)
    assert not is_partitioned_landing(landed, raw, "transactions", 8)  # another partition count: history
    assert not is_partitioned_landing(raw / "transactions/stream/2026-01-01/part-1-0_2-0_abcdef01.parquet", raw,
                                      "transactions", 4)
    assert not is_partitioned_landing(raw / "transactions/generated.parquet", raw, "transactions", 4)


def test_a_producer_writes_an_event_once_per_family_to_its_entitys_partition() -> None:
    event = {"txn_id": "t-1", "card_id": "card_12345", "device_id": "device_100000"}
    assert routes("events:transactions", "transactions", event, 4) == [
        f"events:transactions:card_id:{partition_of('card_12345', 4)}",
        f"events:transactions:device_id:{partition_of('device_100000', 4)}"]
    click = {"event_id": "c-1", "user_id": "user_1", "session_id": "s-9"}
    assert routes("events:clickstream", "clickstream", click, 2) == [
        f"events:clickstream:user_id:{partition_of('user_1', 2)}",
        f"events:clickstream:session_id:{partition_of('s-9', 2)}"]


def test_fair_shares_and_leases_in_the_partitions_hash_slot() -> None:
    assert [fair_share(4, n) for n in (0, 1, 2, 3, 4, 5)] == [4, 4, 2, 2, 1, 1]
    for lane in lanes(STREAMS, PARTITIONS):
        assert key_slot(lease_key(lane.stream, GROUP).encode()) == key_slot(lane.stream.encode())


def test_producers_and_processors_must_agree_on_the_partition_count(redis_server, tmp_path: Path) -> None:
    client = redis_server.client()
    base = f"count_{tmp_path.name}:transactions"
    check_count(client, [base], 4)
    check_count(client, [base], 4)
    with pytest.raises(Exception, match=rf"^{base} is split into 4 partitions \({base}:partitions\), not 8: "
                                        r"run every producer and processor with --partitions 4"):
        check_count(client, [base], 8)


def test_a_partition_rebuilds_from_history_and_its_own_landings_only(tmp_path: Path) -> None:
    """Generated history and the partition's own directory, filtered to its entities; never the
    landings of the other partitions (other entities, or events its family has not processed yet)."""
    from featurelib.raw_reader import RawEvents
    from featurelib.stream.partition_state import lane_events

    repo = tmp_path
    generate(GeneratorConfig(n_cards=40, days=1, seed=5, end_us=now_us() // SECOND * SECOND), paths.raw_dir(repo))
    history = pq.read_table(paths.raw_dir(repo) / "transactions")
    card = [Lane("transactions", "card_id", p, 2, f"s:card_id:{p}") for p in (0, 1)]
    device = Lane("transactions", "device_id", 1, 2, "s:device_id:1")
    copies = {}
    for lane in (*card, device):  # each lane's own events: copies of history rows under new ids
        rows = history.filter(pa.array(lane.owns(history))).slice(0, 5)
        rows = rows.set_column(rows.schema.get_field_index("txn_id"), "txn_id",
                               pa.array([f"{lane.stream}-{i}" for i in range(rows.num_rows)]))
        write_table(rows, lane.landed_dir(repo) / "2026-01-01" / "part-1-0_5-0_0123abcd.parquet")
        copies[lane.stream] = set(rows.column("txn_id").to_pylist())
    raw = RawEvents.scan(paths.raw_dir(repo), "transactions")
    for lane in (*card, device):
        table, clock = lane_events(raw, lane, repo, 10**15)
        ids = set(table.column("txn_id").to_pylist())
        expected = set(history.filter(pa.array(lane.owns(history))).column("txn_id").to_pylist()) | copies[lane.stream]
        assert ids == expected and lane.owns(table).all(), lane.stream
        assert clock == max(history.column("event_timestamp").cast(pa.int64()).to_pylist())


# ----------------------------------------------------------------------------------------- in process

CFG = GeneratorConfig(n_cards=60, days=1, seed=31, end_us=now_us() // SECOND * SECOND)


def source_ids(source: Path) -> dict[str, list[str]]:
    return {kind: pq.read_table(source / kind).column(ID_FIELD[kind]).to_pylist() for kind in STREAMS}


def state_ids(repo: Path, kind: str) -> list[str]:
    """Event ids kept by the families that do not land for the batch job (with repeats, if any)."""
    files = sorted(str(p) for p in (paths.data_dir(repo) / "stream_state" / kind).rglob("*.parquet"))
    return [r[0] for r in duckdb.execute(f"SELECT {ID_FIELD[kind]} FROM read_parquet({files!r})").fetchall()]


def test_one_partitioned_processor_lands_once_and_serves_what_the_batch_job_computes(redis_server,
                                                                                    tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    set_project(repo, f"p_{tmp_path.name.replace('-', '_')[-24:]}")
    feast_cli(repo, "apply")
    generate(CFG, repo / "data" / "replay")
    streams = {kind: f"{tmp_path.name}:{kind}" for kind in STREAMS}
    sent = replay(redis_server.client(), repo / "data" / "replay", streams=streams, partitions=3)
    cfg = ProcessorConfig(repo=repo, streams=streams, partitions=3, clock="event", lateness_s=0, read_count=400)
    processor = PartitionedProcessor(cfg)
    stats = processor.run(until_idle_s=0.5)
    assert len(processor.owned) == 12  # alone: every partition of the 4 families
    assert stats.events == stats.accepted == 2 * sent and stats.duplicates == stats.invalid == 0  # read once per family
    for kind, ids in source_ids(repo / "data" / "replay").items():
        assert sorted(landed_ids(repo, kind)) == sorted(ids)  # once each, for the batch job
        assert sorted(state_ids(repo, kind)) == sorted(ids)  # and once in the other family's state
    assert assert_online_equals_batch_per_partition(repo, 3) > 100


# ----------------------------------------------------------------------------------------- the test

# ~3,500 events ending an hour ago: every row stays within its view's ttl while the test runs.
REPLAY = GeneratorConfig(n_cards=300, days=1, seed=41, end_us=now_us() // SECOND * SECOND - 3600 * SECOND)


def split_source(source: Path, dest: Path) -> tuple[Path, Path]:
    """The generated events cut in two at the median time: ``first`` and ``second`` replays."""
    first, second = dest / "first", dest / "second"
    for kind in STREAMS:
        table = pq.read_table(source / kind).sort_by("event_timestamp")
        half = table.num_rows // 2
        write_table(table.slice(0, half), first / kind / "generated.parquet")
        write_table(table.slice(half), second / kind / "generated.parquet")
    return first, second


def trickle(client, source: Path, chunk: int, pause_s: float) -> threading.Thread:
    """Replay ``source`` into the partitions ``chunk`` events at a time, ``pause_s`` apart, on a
    thread (original timestamps: processors keep up as with live traffic)."""

    def feed() -> None:
        skip = 0
        while sent := replay(client, source, skip=skip, limit=chunk, partitions=PARTITIONS):
            skip += sent
            time.sleep(pause_s)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def holders(client, lane_names: list[str]) -> Counter:
    """Who holds the leases of ``lane_names``: consumer name -> how many."""
    values = [client.get(lease_key(name, GROUP)) for name in lane_names]
    return Counter(v.decode().split("@")[0] if v else None for v in values)


def pending_of(client, lane_names: list[str], consumer: str) -> int:
    """Entries delivered to ``consumer`` and not acknowledged."""
    return sum(c["pending"] for name in lane_names for c in client.xpending(name, GROUP)["consumers"]
               if c["name"] in (consumer, consumer.encode()))


def all_consumed(client, lane_names: list[str]) -> bool:
    for key in lane_names:
        info = next((g for g in client.xinfo_groups(key) if g["name"] in (GROUP, GROUP.encode())), None)
        if info is None or info["pending"] or info["last-delivered-id"] != client.xinfo_stream(key)["last-generated-id"]:
            return False
    return True


def kill_with_entries_pending(processor: Processor, client, lane_names: list[str], consumer: str) -> int:
    """SIGKILL ``processor`` at a moment it holds entries read and not acknowledged (stopped with
    SIGSTOP while it has some: a stopped process acknowledges nothing more); returns how many."""
    deadline = time.monotonic() + 30
    while True:
        processor.process.send_signal(signal.SIGSTOP)
        pending = pending_of(client, lane_names, consumer)
        if pending or time.monotonic() > deadline:
            processor.kill()
            return pending
        processor.process.send_signal(signal.SIGCONT)
        time.sleep(0.02)


def test_two_processors_over_four_partitions_one_killed_mid_replay(tmp_path: Path) -> None:
    """``run --partitions 4`` twice and ``replay --partitions 4``, as docs/STREAMING.md shows them."""
    with RedisServer(durable=True, workdir=tmp_path / "redis") as server, private_redis(server):
        repo = applied_repo(tmp_path / "repo", server, "partitioned_repo")
        source = tmp_path / "source"
        generate(REPLAY, source)
        first, second = split_source(source, tmp_path / "halves")
        client = server.client()
        names = [lane.stream for lane in lanes(STREAMS, PARTITIONS)]
        args = ("--partitions", str(PARTITIONS), "--clock", "event", "--lateness", "0")
        p1 = Processor(repo, server, *args, "--consumer", "p1", name="p1")
        p2 = Processor(repo, server, *args, "--consumer", "p2", name="p2")
        try:
            # Each takes a fair share: half of every family's partitions.
            wait_until(lambda: holders(client, names) == Counter({"p1": 8, "p2": 8}), 60,
                       lambda: f"{holders(client, names)}\n{p1.log()}\n{p2.log()}")
            run([sys.executable, "-m", "featurelib.stream", "replay", "--repo", str(repo), "--partitions",
                 str(PARTITIONS), "--source", str(first)], repo, env={"REDIS_CONNECTION_STRING": server.connection_string})
            wait_until(lambda: all_consumed(client, names), 60, p2.log)
            feeding = trickle(client, second, chunk=100, pause_s=0.25)  # about 4 s
            time.sleep(1.5)
            assert kill_with_entries_pending(p2, client, names, "p2") > 0
            killed = time.monotonic()
            assert feeding.is_alive(), "the kill must come mid-replay"
            wait_until(lambda: holders(client, names) == Counter({"p1": 16}), 60, p1.log)
            took_over = time.monotonic() - killed
            feeding.join(60)
            wait_until(lambda: all_consumed(client, names), 120, p1.log)
            assert p1.stop() == 0, p1.log()
        finally:
            for p in (p1, p2):
                if p.alive:
                    p.kill()
        assert "which no longer runs" in p1.log() and took_over < 10  # same host: no wait for the lease TTL
        ((events, seconds),) = re.findall(r"state rebuilt from ([\d,]+) landed events in ([\d.]+) s; now owns 16", p1.log())
        print(f"\ntakeover: p1 held p2's 8 partitions {took_over:.2f} s after the kill, their state rebuilt from "
              f"{events} landed events in {seconds} s")
        for kind, ids in source_ids(source).items():
            landed = landed_ids(repo, kind)
            assert Counter(landed).most_common(1)[0][1] == 1, f"{kind}: an event landed twice"
            assert set(landed) == set(ids) and len(landed) == len(ids), f"{kind}: {len(set(ids) - set(landed))} lost"
            assert sorted(state_ids(repo, kind)) == sorted(ids), kind
        assert assert_online_equals_batch_per_partition(repo, PARTITIONS) > 500


def txn(txn_id: str, card: str, device: str) -> dict[str, str]:
    return {"txn_id": txn_id, "card_id": card, "user_id": "u1", "device_id": device, "merchant_id": "m1",
            "merchant_category": "grocery", "country": "US", "amount_cents": "1250", "event_timestamp": str(now_us())}


def test_a_hung_processor_loses_its_partitions_after_the_lease_ttl(tmp_path: Path) -> None:
    """On another machine a dead processor's pid cannot be checked: its partitions are taken over once
    its lease expires (``--lease-ttl``). One that was only paused stops when it wakes up (exit 2),
    without reading or acknowledging anything more."""
    from featurelib.feature_data import online_values
    from featurelib.repo import load_store

    with RedisServer(durable=True, workdir=tmp_path / "redis") as server, private_redis(server):
        repo = applied_repo(tmp_path / "repo", server, "hung_repo")
        client = server.client()
        streams = {"transactions": STREAMS["transactions"]}
        names = [lane.stream for lane in lanes(streams, 2)]
        args = ("--partitions", "2", "--stream", "transactions", "--lease-ttl", "2")
        p1 = Processor(repo, server, *args, "--consumer", "p1", name="p1")
        p2 = Processor(repo, server, *args, "--consumer", "p2", name="p2")
        sent = []

        def send(n: int) -> None:
            for i in range(len(sent), len(sent) + n):
                event = txn(f"h-{i}", f"card_h{i % 6}", f"device_h{i % 4}")
                for stream in routes(STREAMS["transactions"], "transactions", event, 2):
                    client.xadd(stream, event)
                sent.append(event["txn_id"])

        try:
            wait_until(lambda: holders(client, names) == Counter({"p1": 2, "p2": 2}), 60,
                       lambda: f"{holders(client, names)}\n{p1.log()}\n{p2.log()}")
            send(30)
            wait_until(lambda: all_consumed(client, names), 60, p2.log)
            p2.process.send_signal(signal.SIGSTOP)  # hung: it stops renewing, and its process still exists
            try:
                paused = time.monotonic()
                wait_until(lambda: holders(client, names) == Counter({"p1": 4}), 30, p1.log)
                took_over = time.monotonic() - paused
                send(30)
                wait_until(lambda: all_consumed(client, names), 60, p1.log)
            finally:
                p2.process.send_signal(signal.SIGCONT)
            assert p2.process.wait(60) == 2
            assert p2.log().strip().splitlines()[-1].startswith("Error: lost the lease of events:transactions:")
            assert p1.alive and p1.stop() == 0, p1.log()
        finally:
            for p in (p1, p2):
                if p.alive:
                    p.kill()
        print(f"\ntakeover of a hung processor's partitions: {took_over:.2f} s (lease TTL 2 s)")
        assert 1.0 < took_over < 2 + 2 + 1
        assert sorted(landed_ids(repo)) == sorted(sent) and sorted(state_ids(repo, "transactions")) == sorted(sent)
        store = load_store(repo)
        rows = online_values(store, store.get_feature_view("transaction_stats_5m"), [f"card_h{i}" for i in range(6)])
        assert [r["values"]["txn_count_24h"] for r in rows] == [10] * 6
        rows = online_values(store, store.get_feature_view("device_activity_24h"), [f"device_h{i}" for i in range(4)])
        assert [r["values"]["device_txn_count_24h"] for r in rows] == [15, 15, 15, 15]
