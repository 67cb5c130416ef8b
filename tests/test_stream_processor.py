"""The stream processor on real Redis Streams: replay, restart without loss, quarantine."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from featurelib import paths
from featurelib.feature_data import online_values
from featurelib.generate import GeneratorConfig, generate
from featurelib.repo import load_store
from featurelib.stream.processor import ProcessorConfig, StreamProcessor
from featurelib.stream.replay import replay
from featurelib.timeutil import SECOND, now_us
from tests.conftest import copy_repo, feast_cli, set_project
from tests.processes import assert_online_equals_batch

CFG = GeneratorConfig(n_cards=60, days=1, seed=17, end_us=now_us() // SECOND * SECOND)


@pytest.fixture
def repo(tmp_path: Path, redis_server) -> Path:
    path = copy_repo(tmp_path / "repo")
    name = f"s_{tmp_path.name.replace('-', '_')[-24:]}"
    set_project(path, name)
    feast_cli(path, "apply")
    generate(CFG, path / "data" / "replay")
    return path


def _config(repo: Path, **kw) -> ProcessorConfig:
    tag = repo.parent.name
    return ProcessorConfig(repo=repo, streams={"transactions": f"{tag}:transactions", "clickstream": f"{tag}:clickstream"},
                           **kw)


def _landed_ids(repo: Path) -> set[str]:
    ids = set()
    for kind, col in (("transactions", "txn_id"), ("clickstream", "event_id")):
        files = sorted(str(p) for p in (paths.raw_dir(repo) / kind / "stream").rglob("*.parquet"))
        if files:
            ids |= {r[0] for r in duckdb.execute(f"SELECT {col} FROM read_parquet({files!r})").fetchall()}
    return ids


def _replay_ids(repo: Path) -> set[str]:
    ids = set()
    for kind, col in (("transactions", "txn_id"), ("clickstream", "event_id")):
        ids |= {r[0] for r in duckdb.execute(
            f"SELECT {col} FROM read_parquet('{repo}/data/replay/{kind}/generated.parquet')").fetchall()}
    return ids


def test_replay_through_redis_streams_serves_what_the_batch_job_computes(repo: Path, redis_server) -> None:
    cfg = _config(repo, clock="event", lateness_s=0)
    sent = replay(redis_server.client(), repo / "data" / "replay", streams=cfg.streams)
    processor = StreamProcessor(cfg)
    stats = processor.run(until_idle_s=0.5)
    assert stats.events == stats.accepted == sent and stats.too_late == stats.invalid == stats.duplicates == 0
    assert _landed_ids(repo) == _replay_ids(repo)
    assert assert_online_equals_batch(repo, processor.core.clock) > 100


def test_one_processor_per_stream_serves_the_same(repo: Path, redis_server) -> None:
    """``run --stream transactions`` and ``run --stream clickstream``: two processes sharing the
    work (the streams feed disjoint views) land and serve exactly what one processor does."""
    cfg = _config(repo, clock="event", lateness_s=0)
    sent = replay(redis_server.client(), repo / "data" / "replay", streams=cfg.streams)
    clock, events = {}, 0
    for kind in ("transactions", "clickstream"):
        processor = StreamProcessor(ProcessorConfig(repo=repo, clock="event", lateness_s=0, consumer=f"p-{kind}",
                                                    streams={kind: cfg.streams[kind]}))
        assert list(processor.core.buffers) == [kind]
        stats = processor.run(until_idle_s=0.5)
        assert _landed_ids(repo) <= _replay_ids(repo)
        clock[kind], events = processor.core.clock[kind], events + stats.events
    assert events == sent
    assert _landed_ids(repo) == _replay_ids(repo)
    assert assert_online_equals_batch(repo, clock) > 100


def test_a_restarted_processor_loses_nothing(repo: Path, redis_server) -> None:
    cfg = _config(repo, clock="event", lateness_s=0, read_count=50, flush_seconds=3600, flush_rows=10**9)
    sent = replay(redis_server.client(), repo / "data" / "replay", streams=cfg.streams)
    first = StreamProcessor(cfg)
    first.leases.take()
    first.ensure_groups()
    first.bootstrap()
    for _ in range(6):
        first.tick()
    first.flush()  # some events landed and acknowledged...
    first.drain()
    for _ in range(6):
        first.tick()  # ...and more read and written to Redis, but not landed: then the process dies
    first.leases.release()  # (a dead process's lease expires; tests/test_stream_faults.py kills real ones)
    client = redis_server.client()
    pending = sum(client.xpending(k, cfg.group)["pending"] for k in cfg.streams.values())
    assert pending > 0
    second = StreamProcessor(cfg)
    stats = second.run(until_idle_s=0.5)
    assert stats.events >= sent - 6 * 2 * 50  # the unacknowledged entries came again
    assert sum(client.xpending(k, cfg.group)["pending"] for k in cfg.streams.values()) == 0
    assert _landed_ids(repo) == _replay_ids(repo)
    assert assert_online_equals_batch(repo, second.core.clock) > 100


def test_a_wall_clock_restart_writes_the_window_exits_it_missed(repo: Path, redis_server,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped right after an event, restarted ten minutes later: the 5-minute exit that fell
    while it was away must be written at once. (The first run's clock is set back ten minutes:
    the write script refuses rows stamped ahead of Redis's own clock, so time cannot be faked
    forward.)"""
    import featurelib.stream.processor as processor_module

    cfg = _config(repo, clock="wall", lateness_s=900)
    client = redis_server.client()
    prefix = load_store(repo).config.online_store.key_prefix
    key = f"{prefix}:card:card_w:transaction_stats_5m"
    t = now_us() - 10 * 60 * SECOND
    client.xadd(cfg.streams["transactions"], {"txn_id": "w1", "card_id": "card_w", "user_id": "u", "device_id": "d",
                                              "merchant_id": "m", "merchant_category": "grocery", "country": "US",
                                              "amount_cents": "100", "event_timestamp": str(t)})
    with monkeypatch.context() as m:
        m.setattr(processor_module, "now_us", lambda: t + SECOND)
        StreamProcessor(cfg).run(until_idle_s=0.5)
    assert client.hget(key, "txn_count_5m") == b"1" and int(client.hget(key, "_event_ts")) == t
    StreamProcessor(cfg).run(until_idle_s=0.3)
    assert int(client.hget(key, "_event_ts")) == t + 5 * 60 * SECOND
    assert client.hget(key, "txn_count_5m") == b"0" and client.hget(key, "txn_count_30m") == b"1"


@pytest.mark.parametrize("background", [True, False])
def test_a_failed_write_stops_the_processor_and_acknowledges_nothing(repo: Path, redis_server, background: bool,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes and acknowledgements run in order, on the processor's I/O thread for large steps;
    a write that fails must surface as an error, and no event whose rows may be missing online
    is acknowledged."""
    cfg = _config(repo, clock="event", lateness_s=0, read_count=100, flush_seconds=0,
                  background_writes_from=1 if background else 10**9)
    sent = replay(redis_server.client(), repo / "data" / "replay", streams=cfg.streams, limit=500)
    processor = StreamProcessor(cfg)

    def broken(commands: list) -> int:
        time.sleep(0.3)  # long enough for the step's acknowledgement to be queued behind this write
        raise ConnectionError("Redis went away")

    processor.writer.send = broken
    with pytest.raises(ConnectionError, match="went away"):
        processor.run(until_idle_s=0.5)
    client = redis_server.client()
    assert sum(client.xpending(k, cfg.group)["pending"] for k in cfg.streams.values()) > 0  # read, not acknowledged
    # A healthy restart gets every event again (the pending ones, then the unread): none was acknowledged.
    assert StreamProcessor(cfg).run(until_idle_s=0.5).events == sent
    assert sum(client.xpending(k, cfg.group)["pending"] for k in cfg.streams.values()) == 0


def test_late_malformed_and_duplicate_events(repo: Path, redis_server) -> None:
    cfg = _config(repo, clock="event", lateness_s=1)
    client = redis_server.client()
    base = CFG.end_us - 3600 * SECOND
    good = {"card_id": "card_q", "user_id": "user_q", "device_id": "device_q", "merchant_id": "m",
            "merchant_category": "grocery", "country": "US", "amount_cents": "100"}
    key = cfg.streams["transactions"]
    client.xadd(key, {**good, "txn_id": "q1", "event_timestamp": str(base)})
    client.xadd(key, {**good, "txn_id": "q2", "event_timestamp": str(base + 10 * SECOND)})
    client.xadd(key, {**good, "txn_id": "q3", "event_timestamp": str(base + 5 * SECOND)})  # 5 s behind: too late
    client.xadd(key, {**good, "txn_id": "q2", "event_timestamp": str(base + 10 * SECOND)})  # delivered twice
    client.xadd(key, {**good, "txn_id": "q4", "amount_cents": "12.50", "event_timestamp": str(base + 11 * SECOND)})
    client.xadd(key, {"txn_id": "q5", "event_timestamp": str(base + 12 * SECOND)})  # no card
    stats = StreamProcessor(cfg).run(until_idle_s=0.5)
    assert (stats.events, stats.accepted, stats.too_late, stats.duplicates, stats.invalid) == (6, 2, 1, 1, 2)
    assert _landed_ids(repo) == {"q1", "q2"}
    quarantine = paths.data_dir(repo) / "quarantine" / "transactions"
    late = pd.concat([pd.read_parquet(p) for p in quarantine.rglob("late-*.parquet")])
    assert late.txn_id.tolist() == ["q3"]
    malformed = pd.concat([pd.read_parquet(p) for p in quarantine.rglob("invalid-*.parquet")])
    assert sorted(malformed.reason) == ["amount_cents is not a valid int64", "missing card_id, user_id, device_id, merchant_id, merchant_category, country, amount_cents"]
    prefix = load_store(repo).config.online_store.key_prefix
    row = client.hgetall(f"{prefix}:card:card_q:transaction_stats_5m")
    assert row[b"txn_count_5m"] == b"2" and row[b"txn_count_24h"] == b"2"  # q1 and q2, 10 s apart


def test_values_out_of_range_are_quarantined_by_stream_and_batch_alike(repo: Path, redis_server) -> None:
    """Negative amounts, scroll_pct 1000, negative dwell: quarantined by the processor, left out
    by the batch job when they sit in a raw file, so online and offline still agree."""
    cfg = _config(repo, clock="event", lateness_s=3600)
    client = redis_server.client()
    t = CFG.end_us - 600 * SECOND
    card = {"card_id": "card_r", "user_id": "user_r", "device_id": "device_r", "merchant_id": "m",
            "merchant_category": "grocery", "country": "US"}
    view = {"user_id": "user_r", "session_id": "session_r", "device_id": "device_r", "event_type": "page_view",
            "page_category": "books"}
    bad_txns = [{**card, "txn_id": "r-neg", "amount_cents": "-500", "event_timestamp": str(t + 1)},
                {**card, "txn_id": "r-big", "amount_cents": "4000000000", "event_timestamp": str(t + 2)}]
    bad_clicks = [{**view, "event_id": "r-scroll", "dwell_ms": "1000", "scroll_pct": "1000", "event_timestamp": str(t + 3)},
                  {**view, "event_id": "r-dwell", "dwell_ms": "-5", "scroll_pct": "10", "event_timestamp": str(t + 4)}]
    client.xadd(cfg.streams["transactions"], {**card, "txn_id": "r-ok", "amount_cents": "700", "event_timestamp": str(t)})
    client.xadd(cfg.streams["clickstream"], {**view, "event_id": "r-view", "dwell_ms": "2000", "scroll_pct": "50",
                                             "event_timestamp": str(t)})
    for fields in bad_txns:
        client.xadd(cfg.streams["transactions"], fields)
    for fields in bad_clicks:
        client.xadd(cfg.streams["clickstream"], fields)
    processor = StreamProcessor(cfg)
    stats = processor.run(until_idle_s=0.5)
    assert (stats.accepted, stats.invalid) == (2, 4)
    reasons = [r["reason"] for kind in ("transactions", "clickstream")
               for p in (paths.data_dir(repo) / "quarantine" / kind).rglob("invalid-*.parquet")
               for r in pd.read_parquet(p).to_dict("records")]
    assert sorted(reasons) == ["amount_cents -500 is below its minimum 0",
                                        "amount_cents 4,000,000,000 is above its maximum 1,000,000,000",
                                        "dwell_ms -5 is below its minimum 0",
                                        "scroll_pct 1,000 is above its maximum 100"]
    # The same kind of events dropped straight into data/raw: the batch job leaves them out too.
    from featurelib.parquet_files import write_table
    from featurelib.raw_events import CLICKSTREAM_SCHEMA, TRANSACTION_SCHEMA

    def table(rows: list[dict], schema) -> pd.DataFrame:
        import pyarrow as pa

        typed = [{k: (int(v) if schema.field(k).type != pa.string() else v) for k, v in r.items()} for r in rows]
        arrays = {n: pa.array([r.get(n) for r in typed], schema.field(n).type if n != "event_timestamp" else pa.int64())
                  for n in schema.names}
        arrays["event_timestamp"] = arrays["event_timestamp"].cast(pa.timestamp("us", tz="UTC"))
        return pa.table(arrays).cast(schema)

    write_table(table([{**r, "txn_id": r["txn_id"] + "-file"} for r in bad_txns], TRANSACTION_SCHEMA),
                paths.raw_dir(repo) / "transactions" / "dropped.parquet")
    write_table(table([{**r, "event_id": r["event_id"] + "-file"} for r in bad_clicks], CLICKSTREAM_SCHEMA),
                paths.raw_dir(repo) / "clickstream" / "dropped.parquet")
    assert assert_online_equals_batch(repo, processor.core.clock) == 5
    store = load_store(repo)
    row = online_values(store, store.get_feature_view("user_engagement_5m"), ["user_r"])[0]["values"]
    assert row["avg_scroll_depth"] == 0.5 and row["avg_dwell_time_sec"] == 2.0  # the valid page view only
    assert online_values(store, store.get_feature_view("card_profile_24h"), ["card_r"])[0]["values"][
        "card_amount_avg_24h"] == 7.0


def test_replay_at_a_steady_rate_stamps_each_event_with_its_moment(repo: Path, redis_server) -> None:
    """``rate=R``: events in event-time order, one every 1/R s, each stamped with that moment
    on the wall clock, and none sent before its moment (its entry id is no earlier)."""
    client = redis_server.client()
    streams = {"transactions": "rate:transactions", "clickstream": "rate:clickstream"}
    sent = replay(client, repo / "data" / "replay", streams=streams, rate=2_000, limit=300)
    entries = [(int(i.split(b"-")[0]), int(f[b"event_timestamp"])) for key in streams.values()
               for i, f in client.xrange(key)]
    assert sent == len(entries) == 300
    stamps = sorted(t for _, t in entries)
    assert {b - a for a, b in zip(stamps, stamps[1:])} == {500}  # 1e6 / 2,000 µs apart
    assert all(ms >= t // 1000 for ms, t in entries)
    with pytest.raises(ValueError, match="speed or a rate"):
        replay(client, repo / "data" / "replay", streams=streams, rate=2_000, speed=10.0, limit=1)


def test_replay_command_takes_a_rate_or_a_speed(repo: Path, redis_server) -> None:
    from click.testing import CliRunner

    from featurelib.stream.__main__ import cli

    runner = CliRunner()
    done = runner.invoke(cli, ["replay", "--repo", str(repo), "--rate", "5000", "--limit", "50"])
    assert done.exit_code == 0, done.output
    client = redis_server.client()
    assert client.xlen("events:transactions") + client.xlen("events:clickstream") == 50
    both = runner.invoke(cli, ["replay", "--repo", str(repo), "--rate", "5", "--speed", "10"])
    assert both.exit_code == 2 and "give --speed or --rate, not both" in both.output
    assert client.xlen("events:transactions") + client.xlen("events:clickstream") == 50
