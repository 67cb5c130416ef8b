"""The stream processor when things go wrong around it, each on its own real redis-server with
real ``python -m featurelib.stream run`` processes:

* an event stamped far in the future is quarantined and cannot move the clock;
* redis-server killed mid-backlog: with an append-only file the processor reconnects and
  nothing is lost or applied twice; without persistence it says what Redis lost (exit 2);
* a processor killed mid-backlog: its successor loses and duplicates nothing;
* a second processor for the same streams refuses to start, or takes over as a standby
  only once the first is gone;
* operational failures are one line and exit code 2.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from featurelib import paths
from featurelib.batch import build_all
from featurelib.feature_data import online_values
from featurelib.generate import GeneratorConfig, generate
from featurelib.parquet_files import write_table
from featurelib.raw_events import TRANSACTION_SCHEMA
from featurelib.redis_server import RedisServer, free_port
from featurelib.repo import load_store
from featurelib.stream.replay import replay
from featurelib.timeutil import DAY, SECOND, now_us
from tests.conftest import run
from tests.processes import (
    STREAMS,
    Processor,
    applied_repo,
    assert_online_equals_batch,
    consumed,
    landed_ids,
    private_redis,
    quarantined,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)


def txn(txn_id: str, card: str, t_us: int, cents: int = 1250) -> dict[str, str]:
    return {"txn_id": txn_id, "card_id": card, "user_id": "u1", "device_id": "d1", "merchant_id": "m1",
            "merchant_category": "grocery", "country": "US", "amount_cents": str(cents), "event_timestamp": str(t_us)}


def pa_table(rows: list[dict[str, str]]):
    import pyarrow as pa

    typed = [{**r, "amount_cents": int(r["amount_cents"]), "event_timestamp": int(r["event_timestamp"])} for r in rows]
    table = pa.Table.from_pylist(typed)
    table = table.set_column(table.schema.get_field_index("event_timestamp"), "event_timestamp",
                             table.column("event_timestamp").cast(pa.timestamp("us", tz="UTC")))
    return table.cast(pa.schema([TRANSACTION_SCHEMA.field(n) for n in table.column_names]))


def online(repo: Path, view: str, ids: list[str]) -> list[dict]:
    store = load_store(repo)
    return online_values(store, store.get_feature_view(view), ids)


@pytest.fixture
def server(tmp_path: Path):
    with RedisServer(durable=True, workdir=tmp_path / "redis") as s, private_redis(s):
        yield s


@pytest.fixture
def repo(tmp_path: Path, server: RedisServer) -> Path:
    return applied_repo(tmp_path / "repo", server, "faults_repo")


# ~11,000 events ending an hour ago: every row stays within its view's ttl while the tests run.
REPLAY = GeneratorConfig(n_cards=1000, days=1, seed=23, end_us=now_us() // SECOND * SECOND - 3600 * SECOND)


@pytest.fixture(scope="module")
def replay_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("replay")
    generate(REPLAY, source)
    return source


def replay_ids(source: Path) -> dict[str, set[str]]:
    return {kind: set(pq.read_table(source / kind / "generated.parquet").column(col).to_pylist())
            for kind, col in (("transactions", "txn_id"), ("clickstream", "event_id"))}


def mid_backlog(processor: Processor, client, source: Path, repo: Path) -> int:
    """Replay the first half and let ``processor`` land it, queue the rest while it is paused,
    let it run for a moment, and return (how many events were sent) while it is still working
    through them."""
    half = replay(client, source, limit=5_000)
    wait_until(lambda: consumed(client), 60, processor.log)
    processor.process.send_signal(signal.SIGSTOP)
    try:
        sent = replay(client, source, skip=half)
    finally:
        processor.process.send_signal(signal.SIGCONT)
    time.sleep(0.15)
    assert landed_ids(repo) and not consumed(client), "the fault must come while entries are still pending"
    return half + sent


# ----------------------------------------------------------------------------------------- time


def test_an_event_from_the_future_is_quarantined_and_never_moves_the_clock(repo: Path, server: RedisServer) -> None:
    """The issue's reproduction: one transaction a year ahead, a restart, a normal transaction."""
    client = server.client()
    now = now_us()
    client.xadd(STREAMS["transactions"], txn("f-1", "card_future", now + 365 * DAY))
    client.xadd(STREAMS["transactions"], txn("f-2", "card_a", now))
    first = Processor(repo, server)
    wait_until(lambda: consumed(client), 60, first.log)
    assert first.stop() == 0, first.log()
    assert "f-1" not in landed_ids(repo) and "f-2" in landed_ids(repo)
    reasons = [r["reason"] for r in quarantined(repo)]
    assert len(reasons) == 1 and "s ahead of the clock (at most 60 s allowed)" in reasons[0]

    second = Processor(repo, server)  # restarted: its state comes from what was landed
    second.wait_for_log("consuming")
    client.xadd(STREAMS["transactions"], txn("f-3", "card_b", now_us()))
    wait_until(lambda: consumed(client) and online(repo, "transaction_stats_5m", ["card_b"])[0]["present"], 60,
               second.log)
    rows = online(repo, "transaction_stats_5m", ["card_a", "card_b", "card_future"])
    assert [r["values"]["txn_count_5m"] for r in rows[:2]] == [1, 1]  # not zeroed by a clock a year ahead
    assert all(r["event_us"] <= now_us() for r in rows[:2]) and rows[1]["values"]["velocity_score"] > 0
    assert not rows[2]["present"]
    assert second.stop() == 0

    # The batch job agrees, even with a far-future event dropped straight into data/raw.
    write_table(pa_table([txn("f-4", "card_c", now + 365 * DAY), txn("f-5", "card_c", now)]),
                paths.raw_dir(repo) / "transactions" / "dropped.parquet")
    builds = build_all(paths.raw_dir(repo), paths.features_dir(repo), ["transaction_stats_5m"],
                       quarantine_dir=paths.data_dir(repo) / "quarantine")
    assert builds[0].invalid == 1 and builds[0].events == 3  # f-2, f-3 (landed) and f-5
    listed = pq.read_table(paths.data_dir(repo) / "quarantine" / "transactions" / "batch-invalid.parquet")
    assert listed.column("txn_id").to_pylist() == ["f-4"]


# ----------------------------------------------------------------------------------------- Redis


def test_redis_killed_mid_backlog_with_an_append_only_file_loses_nothing(repo: Path, server: RedisServer,
                                                                        replay_source: Path) -> None:
    client = server.client()
    processor = Processor(repo, server, "--clock", "event", "--lateness", "0")
    processor.wait_for_log("consuming")
    sent = mid_backlog(processor, client, replay_source, repo)
    server.kill()
    processor.wait_for_log("starting over", 30)
    server.start()
    processor.wait_for_log("answers again", 60)
    wait_until(lambda: consumed(server.client()), 120, processor.log)
    assert processor.alive
    assert processor.stop() == 0, processor.log()
    expected = replay_ids(replay_source)
    assert sum(len(v) for v in expected.values()) == sent
    for kind, ids in expected.items():
        landed = landed_ids(repo, kind)
        assert Counter(landed).most_common(1)[0][1] == 1, "no event landed twice"
        assert set(landed) == ids, f"{kind}: {len(ids - set(landed))} lost"
    assert assert_online_equals_batch(repo) > 100


def test_redis_restarted_without_persistence_is_reported(tmp_path: Path) -> None:
    """The backlog and the online store of a Redis without persistence are gone after a restart:
    the processor says so (and goes on with new events), then exits 2 naming the cause."""
    with RedisServer(workdir=tmp_path / "redis") as server, private_redis(server):
        repo = applied_repo(tmp_path / "repo", server, "volatile_repo")
        processor = Processor(repo, server, "--until-idle", "8")
        processor.wait_for_log("consuming")
        assert "keeps no append-only file" in processor.log()
        client = server.client()
        client.xadd(STREAMS["transactions"], txn("v-1", "card_v", now_us()))
        wait_until(lambda: consumed(client) and landed_ids(repo), 60, processor.log)
        server.kill()
        server.start()  # empty
        processor.wait_for_log("lost data of events:transactions", 60)
        client = server.client()
        client.xadd(STREAMS["transactions"], txn("v-2", "card_w", now_us()))
        wait_until(lambda: consumed(client) and "v-2" in landed_ids(repo), 60, processor.log)
        assert online(repo, "transaction_stats_5m", ["card_w"])[0]["values"]["txn_count_5m"] == 1
        assert processor.process.wait(60) == 2
        last = processor.log().strip().splitlines()[-1]
        assert last.startswith("Error: Redis at 127.0.0.1:") and "lost data of events:transactions: it ends at entry" in last
        assert "restore-online" in last


def test_a_processor_killed_mid_backlog_is_replaced_without_loss(repo: Path, server: RedisServer,
                                                                 replay_source: Path) -> None:
    client = server.client()
    first = Processor(repo, server, "--clock", "event", "--lateness", "0", name="first")
    first.wait_for_log("consuming")
    mid_backlog(first, client, replay_source, repo)
    first.kill()  # SIGKILL: nothing flushed, nothing released
    second = Processor(repo, server, "--clock", "event", "--lateness", "0", name="second")
    second.wait_for_log("which no longer runs", 60)  # the dead holder's lease, taken at once
    wait_until(lambda: consumed(client), 120, second.log)
    assert second.stop() == 0, second.log()
    for kind, ids in replay_ids(replay_source).items():
        landed = landed_ids(repo, kind)
        assert set(landed) == ids and len(landed) == len(ids), kind
    assert assert_online_equals_batch(repo) > 100


# ----------------------------------------------------------------------------------------- one owner


def test_a_second_processor_for_the_same_streams_refuses_to_start(repo: Path, server: RedisServer) -> None:
    first = Processor(repo, server, name="first")
    first.wait_for_log("consuming")
    second = Processor(repo, server, "--consumer", "processor-2", name="second")
    assert second.process.wait(60) == 2
    lines = second.log().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"Error: another processor, processor-1 (pid {first.process.pid} on ")
    assert "--standby" in lines[0]
    # A standby waits; stopped while waiting, it exits cleanly without having read anything.
    standby = Processor(repo, server, "--standby", "--consumer", "processor-3", name="standby")
    standby.wait_for_log("standby: processor-1")
    assert standby.stop() == 0 and "consuming" not in standby.log()
    # Another group is not the same partition; a group added beside a stream that kept its
    # entries is no loss of data, even where events were landed before.
    client = server.client()
    client.xadd(STREAMS["transactions"], txn("g-1", "card_g", now_us()))
    wait_until(lambda: consumed(client) and landed_ids(repo), 60, first.log)
    other = Processor(repo, server, "--group", "audit", "--consumer", "processor-2", "--until-idle", "1", name="other")
    assert other.process.wait(60) == 0, other.log()
    assert "lost data" not in other.log()
    assert first.alive and first.stop() == 0


def test_a_standby_takes_over_only_when_the_first_is_gone(repo: Path, server: RedisServer) -> None:
    client = server.client()
    first = Processor(repo, server, "--lease-ttl", "2", name="first")
    first.wait_for_log("consuming")
    standby = Processor(repo, server, "--standby", "--consumer", "processor-2", "--lease-ttl", "2", name="standby")
    standby.wait_for_log("standby: processor-1")
    t = now_us()
    for i in range(30):
        client.xadd(STREAMS["transactions"], txn(f"s-{i}", f"card_s{i % 3}", t + i))
    wait_until(lambda: consumed(client), 60, first.log)
    assert "consuming" not in standby.log()  # it read nothing
    first.process.send_signal(signal.SIGSTOP)  # hung: it stops renewing, and its process still exists
    try:
        standby.wait_for_log("consuming", 30)  # after the lease expired
        for i in range(30, 60):
            client.xadd(STREAMS["transactions"], txn(f"s-{i}", f"card_s{i % 3}", now_us()))
        wait_until(lambda: consumed(client), 60, standby.log)
    finally:
        first.process.send_signal(signal.SIGCONT)
    # The first one wakes up, finds its lease taken, and stops without acknowledging anything more.
    assert first.process.wait(60) == 2
    assert first.log().strip().splitlines()[-1].startswith("Error: lost the lease of events:")
    assert standby.stop() == 0
    landed = landed_ids(repo)
    assert sorted(landed) == sorted(f"s-{i}" for i in range(60)), "every event landed exactly once"
    counts = [r["values"]["txn_count_24h"] for r in online(repo, "transaction_stats_5m", ["card_s0", "card_s1", "card_s2"])]
    assert counts == [20, 20, 20]


# ----------------------------------------------------------------------------------------- one line


def _stream_cli(repo: Path, connection: str, *args: str):
    return run([sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), *args], repo, check=False,
               env={"REDIS_CONNECTION_STRING": connection}, timeout=120)


def test_refused_credentials_are_one_line(repo: Path, tmp_path: Path) -> None:
    with RedisServer(extra_args=("--requirepass", "s3cret")) as locked:
        result = _stream_cli(repo, f"{locked.connection_string},password=wrong")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: Redis at {locked.connection_string} refused the credentials (invalid username-password pair or "
        f"user is disabled.): check REDIS_PASSWORD or the password in REDIS_CONNECTION_STRING"]


def test_redis_away_longer_than_the_reconnect_timeout_is_one_line(repo: Path) -> None:
    port = free_port()
    result = _stream_cli(repo, f"127.0.0.1:{port}", "--reconnect-timeout", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"waiting for Redis at 127.0.0.1:{port}")
    assert len(lines) == 2 and lines[1].startswith(f"Error: Redis at 127.0.0.1:{port} unreachable for ")
    assert lines[1].endswith("; giving up")


def test_an_unreadable_raw_file_is_one_line_naming_it(repo: Path, server: RedisServer) -> None:
    broken = paths.raw_dir(repo) / "transactions" / "stream" / "2026-11-29" / "part-broken.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PAR1 this is not parquet")
    result = _stream_cli(repo, server.connection_string, "--until-idle", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: cannot read the Parquet file {broken}: ")
    batch = run([sys.executable, "-m", "featurelib.batch", "--repo", str(repo)], repo, check=False)
    assert batch.returncode == 2
    assert batch.stderr.strip().splitlines() == [batch.stderr.strip()]
    assert batch.stderr.startswith(f"Error: cannot read the Parquet file {broken}: ")
