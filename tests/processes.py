"""Real servers in subprocesses, each against its own private redis-server, for the tests of what
happens around them: stream processors (bad entries, a second processor, Redis going away) and
HTTP feature servers (``http_server``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import httpx
import redis

from featurelib import paths
from featurelib.redis_server import RedisServer, free_port
from tests.conftest import BIN, copy_repo, feast_cli, run, set_project

STREAMS = {"transactions": "events:transactions", "clickstream": "events:clickstream"}
GROUP = "featurelib"


def applied_repo(dest: Path, server: RedisServer, project: str) -> Path:
    """A repository copy with its own project and key prefix, applied against ``server``."""
    repo = copy_repo(dest)
    set_project(repo, project)
    feast_cli(repo, "apply", env={"REDIS_CONNECTION_STRING": server.connection_string})
    return repo


@contextlib.contextmanager
def private_redis(server: RedisServer) -> Iterator[None]:
    """Point this process's Feast stores (``REDIS_CONNECTION_STRING``) at ``server`` for a while."""
    previous = os.environ["REDIS_CONNECTION_STRING"]
    os.environ["REDIS_CONNECTION_STRING"] = server.connection_string
    try:
        yield
    finally:
        os.environ["REDIS_CONNECTION_STRING"] = previous


class Processor:
    """``python -m featurelib.stream run`` in a subprocess; its stderr goes to a file."""

    def __init__(self, repo: Path, server: RedisServer, *args: str, name: str = "processor"):
        self.log_path = repo / f"{name}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
               "REDIS_CONNECTION_STRING": server.connection_string}
        self.process = subprocess.Popen([sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), *args],
                                        cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=self._log)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        wait_until(lambda: text in self.log() or not self.alive and text in self.log(), timeout,
                   lambda: f"{text!r} not in the processor's log:\n{self.log()[-3000:]}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code."""
        if self.alive:
            self.process.terminate()
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._log.close()


def wait_until(condition: Callable[[], object], timeout: float = 60.0, message: Callable[[], str] | None = None,
               every: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message() if message else "timed out")
        time.sleep(every)


def consumed(client: redis.Redis, streams: tuple[str, ...] = tuple(STREAMS.values()), group: str = GROUP) -> bool:
    """Every entry of ``streams`` delivered to ``group`` and acknowledged."""
    for key in streams:
        if not client.exists(key):
            continue
        last = client.xinfo_stream(key)["last-generated-id"]
        groups = {g["name"]: g for g in client.xinfo_groups(key)}
        info = groups.get(group.encode()) or groups.get(group)
        if info is None or info["pending"] or info["last-delivered-id"] != last:
            return False
    return True


def landed_ids(repo: Path, kind: str = "transactions") -> list[str]:
    """Event ids landed by the stream processor (with repeats, if any)."""
    files = sorted(str(p) for p in (paths.raw_dir(repo) / kind / "stream").rglob("*.parquet"))
    if not files:
        return []
    column = "txn_id" if kind == "transactions" else "event_id"
    return [r[0] for r in duckdb.execute(f"SELECT {column} FROM read_parquet({files!r})").fetchall()]


def quarantined(repo: Path, kind: str = "transactions", reason: str = "invalid") -> list[dict]:
    """Rows of the processor's quarantine partitions of one reason (``invalid`` or ``late``)."""
    import pyarrow.parquet as pq

    rows = []
    for path in sorted((paths.data_dir(repo) / "quarantine" / kind).rglob(f"{reason}-*.parquet")):
        rows += pq.read_table(path).to_pylist()
    return rows


def assert_online_equals_batch(repo: Path, clock: dict[str, int] | None = None) -> int:
    """Run the batch job over the landed events; every entity's online row must be its latest
    batch row at or before its stream's clock (default: the newest landed event of the stream).
    Returns how many entities were compared."""
    import pandas as pd

    from featurelib import semantics
    from featurelib.batch import build_all
    from featurelib.feature_data import offline_path
    from featurelib.repo import load_store

    build_all(paths.raw_dir(repo), paths.features_dir(repo))
    if clock is None:
        clock = {kind: duckdb.execute(f"SELECT epoch_us(max(event_timestamp)) FROM read_parquet("
                                      f"{sorted(str(p) for p in (paths.raw_dir(repo) / kind).rglob('*.parquet'))!r})"
                                      ).fetchone()[0] for kind in STREAMS}
    store = load_store(repo)
    checked = 0
    for name, semantic in semantics.VIEWS.items():
        view = store.get_feature_view(name)
        offline = pd.read_parquet(offline_path(store, view))
        until = pd.Timestamp(clock[semantic.events] * 1000, tz="UTC")
        checked += assert_online_rows(store, view, offline[offline.event_timestamp <= until])
    return checked


def assert_online_rows(store, view, offline) -> int:
    """Each entity's newest row of ``offline`` (the batch rows up to its clock) is its online row:
    present, stamped with the row's event time, every feature equal (floats bit for bit). Returns
    how many entities were compared."""
    from featurelib.feature_data import online_values
    from featurelib.pit import same

    key = view.join_keys[0]
    latest = offline.sort_values([key, "event_timestamp"]).groupby(key).tail(1).reset_index(drop=True)
    online = online_values(store, view, latest[key].tolist())
    for i, row in latest.iterrows():
        assert online[i]["present"], f"{view.name} {row[key]} missing online"
        assert online[i]["event_us"] == row.event_timestamp.value // 1000, (view.name, row[key])
        bad = [f.name for f in view.features if not same(online[i]["values"][f.name], row[f.name])]
        assert not bad, (view.name, row[key], bad)
    return len(latest)


def per_partition_clocks(repo: Path, count: int) -> dict[tuple[str, str, int], int]:
    """With ``--clock event`` a partition's clock is the newest event time seen in it: here, the
    newest landed event of its entities (every event was accepted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from featurelib.stream.partitions import family_keys, partitions_of

    clocks: dict[tuple[str, str, int], int] = {}
    for kind in STREAMS:
        table = pq.read_table(paths.raw_dir(repo) / kind)
        times = table.column("event_timestamp").cast(pa.int64()).to_numpy()
        for key in family_keys(kind):
            for p, t in zip(partitions_of(table.column(key), count).tolist(), times.tolist()):
                clocks[kind, key, p] = max(clocks.get((kind, key, p), 0), t)
    return clocks


def assert_online_equals_batch_per_partition(repo: Path, count: int) -> int:
    """``tests.processes.assert_online_equals_batch`` with each entity's clock its partition's:
    every entity's online row is its newest batch row at or before that clock. The batch job is
    ``python -m featurelib.batch`` over the landed raw events. Returns the entities compared."""
    import pandas as pd
    import pyarrow as pa

    from featurelib import semantics
    from featurelib.feature_data import offline_path
    from featurelib.repo import load_store
    from featurelib.stream.partitions import partitions_of

    run([sys.executable, "-m", "featurelib.batch", "--repo", str(repo)], repo)
    clocks = per_partition_clocks(repo, count)
    store = load_store(repo)
    checked = 0
    for name, semantic in semantics.VIEWS.items():
        view = store.get_feature_view(name)
        key = view.join_keys[0]
        offline = pd.read_parquet(offline_path(store, view))
        clock = [clocks[semantic.events, key, p] for p in partitions_of(pa.array(offline[key]), count).tolist()]
        at_us = offline.event_timestamp.dt.tz_convert(None).astype("datetime64[us]").astype("int64")
        checked += assert_online_rows(store, view, offline[at_us <= clock])
    return checked


@contextlib.contextmanager
def http_server(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 90) -> Iterator[str]:
    """Start a server command with ``--host 127.0.0.1 --port <free>`` appended; yield its URL once
    ``GET /health`` answers; stop it afterwards."""
    port = free_port()
    log = (cwd / f"server-{port}.log").open("w")
    proc = subprocess.Popen([*args, "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not start: {(cwd / f'server-{port}.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
