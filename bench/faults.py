#!/usr/bin/env python
"""Fault benchmark: processors and redis-servers killed with SIGKILL during a replay.

A generated set of events (both streams, ``--cards`` over ``--days``, ending a day before now;
about 400,000 events by default) is replayed as fast as the processor takes it, in chunks of
``--chunk`` events, into a private redis-server that keeps an append-only file (``appendonly
yes``, ``appendfsync everysec``). The processor runs as its documented command,
``python -m featurelib.stream run --clock event --lateness 0``, in a subprocess.

While the replay runs, faults spread over it, alternating:

* the processor is killed (SIGKILL) and a new one started at once; it takes over the dead
  one's lease (its pid no longer exists), rebuilds its state from the landed events and reads
  again what was not acknowledged;
* the redis-server is killed (SIGKILL) and restarted after ``--redis-down`` seconds on the same
  port, reloading its append-only file; the processor reconnects by itself.

The producer (this process) may find Redis gone: it waits until Redis answers and sends the
chunk again. An ``XADD`` whose reply was lost may have been applied, so a retry can put an event
into a stream twice; the processor drops the second copy by its event id. The producer keeps
at most ``--max-backlog`` entries not yet acknowledged, so the replay lasts as long as the
processing and the faults hit a busy processor.

Once every entry is delivered and acknowledged, the processor is stopped (SIGTERM) and the
benchmark counts, from the streams, ``data/raw/<stream>/stream/`` and ``data/quarantine/``:
events produced (ids whose ``XADD`` was answered), landed, landed more than once, quarantined
and lost (produced, neither landed nor quarantined); then it runs the batch job over the landed
events and compares every entity's online row, feature by feature (``featurelib.pit.same``: floats
bit for bit), with its latest batch row at or before its stream's clock.

    python bench/faults.py                                  # 5,000 cards over 7 days, 3 + 3 kills
    python bench/faults.py --cards 300 --days 1 --processor-kills 1 --redis-kills 1 --chunk 500

Writes bench/results/faults.{json,md}; the processors' and redis-servers' logs go to
bench/results/faults-logs/. Exits 1 when a target is missed (lost, duplicated, mismatching or
missing entities, a processor that did not stop cleanly), after writing the results.
"""

from __future__ import annotations

import bisect
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import click
from report import save  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", ".feastignore"]
KINDS = ("transactions", "clickstream")
GROUP = "featurelib"
EXAMPLES = 10

T0 = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - T0


def say(message: str) -> None:
    click.echo(f"[{elapsed():7.1f}s] {message}", err=True)


class SetupError(click.ClickException):
    """Set-up failed: one line, exit 1."""


# ------------------------------------------------------------------------------------ producer


class Ledger:
    """What the producer sent: ids whose XADD was answered (and the entry ids Redis gave them),
    and XADDs whose reply never came."""

    def __init__(self, id_fields: dict[str, str], streams: dict[str, str]):
        self.id_field_of = {streams[k]: id_fields[k] for k in streams}
        self.answered: set[str] = set()
        self.entries: dict[str, list[tuple[int, int]]] = {key: [] for key in streams.values()}  # increasing
        self.in_flight = threading.Event()  # a pipeline of XADDs is being sent
        self.xadds_answered = 0
        self.xadds_unanswered = 0  # in a pipeline that failed: applied or not, unknown
        self.resent_after_answer = 0  # answered XADDs of an id already answered before
        self.lock = threading.Lock()

    def answered_ids(self, ids: list[str], keys: list[str], entry_ids: list) -> None:
        with self.lock:
            self.xadds_answered += len(ids)
            for key, entry in zip(keys, entry_ids):
                self.entries[key].append(entry_id(entry))
            for i in ids:
                if i in self.answered:
                    self.resent_after_answer += 1
                else:
                    self.answered.add(i)

    def unanswered(self, n: int) -> None:
        with self.lock:
            self.xadds_unanswered += n


class _CountingPipeline:
    """The pipeline ``featurelib.stream.replay.replay`` uses, recording each XADD's event id."""

    def __init__(self, pipe, ledger: Ledger):
        self.pipe, self.ledger, self.ids, self.keys = pipe, ledger, [], []

    def xadd(self, name, fields, *args, **kwargs):
        key = name.decode() if isinstance(name, bytes) else name
        self.ids.append(fields[self.ledger.id_field_of[key]])
        self.keys.append(key)
        return self.pipe.xadd(name, fields, *args, **kwargs)

    def execute(self, *args, **kwargs):
        ids, keys, self.ids, self.keys = self.ids, self.keys, [], []
        self.ledger.in_flight.set()
        try:
            result = self.pipe.execute(*args, **kwargs)
        except BaseException:
            self.ledger.unanswered(len(ids))
            raise
        finally:
            self.ledger.in_flight.clear()
        self.ledger.answered_ids(ids, keys, result)
        return result

    def __len__(self) -> int:
        return len(self.pipe)


class CountingClient:
    def __init__(self, client, ledger: Ledger):
        self.client, self.ledger = client, ledger

    def pipeline(self, *args, **kwargs) -> _CountingPipeline:
        return _CountingPipeline(self.client.pipeline(*args, **kwargs), self.ledger)

    def __getattr__(self, name):
        return getattr(self.client, name)


def wait_for_redis(client, timeout_s: float = 600.0) -> float:
    """Until Redis answers PING; returns the seconds waited."""
    import redis

    started = time.monotonic()
    while True:
        try:
            client.ping()
            return time.monotonic() - started
        except (redis.RedisError, OSError):
            if time.monotonic() - started > timeout_s:
                raise click.ClickException(f"Redis did not answer for {timeout_s:g} s") from None
            time.sleep(0.1)


def entry_id(value: bytes | str) -> tuple[int, int]:
    ms, _, seq = (value.decode() if isinstance(value, bytes) else value).partition("-")
    return int(ms), int(seq or 0)


def backlog(client, ledger: Ledger) -> int:
    """Entries not acknowledged by the group yet: pending, plus the entries the producer added
    after the group's last delivered one. (Not the group's ``lag``: after a redis-server restart
    Redis 7.0 reported a lag of 66,000 entries for groups that had been delivered every entry.)"""
    total = 0
    for key, added in ledger.entries.items():
        for g in client.xinfo_groups(key):
            name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
            if name == GROUP:
                with ledger.lock:
                    undelivered = len(added) - bisect.bisect_right(added, entry_id(g["last-delivered-id"]))
                total += undelivered + int(g["pending"])
    return total


def consumed(client, streams: list[str]) -> bool:
    """Every entry of ``streams`` delivered to the group and acknowledged (tests/processes.py)."""
    for key in streams:
        if not client.exists(key):
            continue
        last = client.xinfo_stream(key)["last-generated-id"]
        groups = {(g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g for g in client.xinfo_groups(key)}
        info = groups.get(GROUP)
        if info is None or info["pending"] or info["last-delivered-id"] != last:
            return False
    return True


# ------------------------------------------------------------------------------------ processors

STATS = re.compile(r"^([\d,]+) events \([^)]*\): ([\d,]+) applied, ([\d,]+) too late, ([\d,]+) duplicates, "
                   r"([\d,]+) invalid; ([\d,]+) rows written")
REBUILT = re.compile(r"^state rebuilt from ([\d,]+) landed events")
SUSPICIOUS = re.compile(r"error|warning|traceback|refused|lost data|exception", re.I)
EXPECTED = re.compile(r"starting over; entries not acknowledged will be read again$|^waiting for Redis at ")
"""Lines a processor prints when the redis-server goes away, as it should."""


def _int(text: str) -> int:
    return int(text.replace(",", ""))


class ProcessorRun:
    """One ``python -m featurelib.stream run`` process; its stderr, each line stamped with the
    benchmark's elapsed time, goes to ``log_path`` (and is kept in memory)."""

    def __init__(self, number: int, repo: Path, env: dict, log_path: Path):
        self.number, self.log_path = number, log_path
        self.lines: list[tuple[float, str]] = []
        self.started = elapsed()
        self.ended: float | None = None
        self.how: str | None = None  # killed | stopped | exited (on its own)
        self.exit_code: int | None = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "featurelib.stream", "run", "--repo", str(repo), "--clock", "event", "--lateness", "0"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, name=f"processor-{number}-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self.log_path.open("w") as log:
            log.write(f"[{self.started:7.1f}s] (benchmark) started pid {self.pid}\n")
            for line in self.process.stderr:
                t = elapsed()
                line = line.rstrip("\n")
                self.lines.append((t, line))
                log.write(f"[{t:7.1f}s] {line}\n")
                log.flush()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def rebuilds(self) -> list[tuple[float, int]]:
        return [(t, _int(m.group(1))) for t, line in list(self.lines) if (m := REBUILT.match(line))]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.exit_code = self.process.wait(30)
        self._finish("killed")

    def stop(self, timeout_s: float = 300.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_code = self.process.wait(30)
            self.lines.append((elapsed(), f"(benchmark) did not stop within {timeout_s:g} s of SIGTERM: killed"))
        self._finish("stopped")
        return self.exit_code

    def ended_on_its_own(self) -> None:
        self.exit_code = self.process.wait()
        self._finish("exited")

    def _finish(self, how: str) -> None:
        self.ended, self.how = elapsed(), how
        self._reader.join(10)

    def final_stats(self) -> dict | None:
        """The stats line a processor prints when it stops (right before "time by phase:")."""
        lines = [line for _, line in self.lines]
        for i, line in enumerate(lines[:-1]):
            if lines[i + 1].startswith("time by phase:") and (m := STATS.match(line)):
                events, applied, late, duplicates, invalid, rows = (_int(g) for g in m.groups())
                return {"line": line, "events": events, "applied": applied, "too_late": late,
                        "duplicates": duplicates, "invalid": invalid, "rows_written": rows}
        return None

    def summary(self) -> dict:
        lines = list(self.lines)
        rebuilds = []
        marks = [(self.started, "start")] + [(t, "reconnect") for t, line in lines if "answers again" in line]
        for t, loaded in self.rebuilds():
            since = max((m for m in marks if m[0] <= t), default=(self.started, "start"))
            rebuilds.append({"after": since[1], "landed_events": loaded, "seconds": round(t - since[0], 2)})
        return {"number": self.number, "pid": self.pid, "started_s": round(self.started, 1),
                "ended_s": None if self.ended is None else round(self.ended, 1), "how": self.how,
                "exit_code": self.exit_code, "rebuilds": rebuilds,
                "reconnects": sum("answers again" in line for _, line in lines),
                "lease_takeovers": [line for _, line in lines if "which no longer runs" in line],
                "final_stats": self.final_stats(),
                "suspicious": [line for _, line in lines if SUSPICIOUS.search(line) and not EXPECTED.search(line)][:20],
                "log": self.log_path.name}


class Fleet:
    """The processors of the run, one alive at a time."""

    def __init__(self, repo: Path, env: dict, logs: Path):
        self.repo, self.env, self.logs = repo, env, logs
        self.runs: list[ProcessorRun] = []
        self.unexpected_exits: list[dict] = []
        self.lock = threading.RLock()

    def start(self) -> ProcessorRun:
        with self.lock:
            n = len(self.runs) + 1
            run = ProcessorRun(n, self.repo, self.env, self.logs / f"processor-{n}.log")
            self.runs.append(run)
            return run

    @property
    def current(self) -> ProcessorRun:
        with self.lock:
            return self.runs[-1]

    def replace_if_dead(self) -> None:
        """A processor that exited on its own is a finding: recorded, and a new one started."""
        with self.lock:
            run = self.current
            if run.alive or run.how is not None:
                return
            run.ended_on_its_own()
            tail = [line for _, line in run.lines[-3:]]
            self.unexpected_exits.append({"processor": run.number, "exit_code": run.exit_code, "last_lines": tail})
            say(f"UNEXPECTED: processor {run.number} (pid {run.pid}) exited with code {run.exit_code}: "
                f"{tail[-1] if tail else ''}; starting another")
            self.start()

    def kill_and_restart(self) -> tuple[int, int]:
        with self.lock:
            old = self.current
            old.kill()
            new = self.start()
            return old.pid, new.pid

    def rebuilt_since(self, t: float) -> bool:
        return any(rt > t for rt, _ in self.current.rebuilds())


# ------------------------------------------------------------------------------------ faults


class Faults(threading.Thread):
    """Injects the scheduled faults once the producer reaches each one's chunk, each after the
    processor is consuming again since the previous fault, at a random moment within ``jitter_s``;
    a redis-server is then killed while the producer sends a pipeline of XADDs (the next one within
    ``IN_FLIGHT_WAIT_S``, at a random moment of its first 50 ms; sending 5,000 takes 60-80 ms), so
    that some of them may be applied and their replies lost."""

    IN_FLIGHT_WAIT_S = 30.0

    def __init__(self, schedule: list[tuple[str, int]], fleet: Fleet, server, ledger: Ledger, redis_down_s: float,
                 jitter_s: float, progress: dict, rng: random.Random, logs: Path):
        super().__init__(name="faults", daemon=True)
        self.schedule, self.fleet, self.server, self.ledger = schedule, fleet, server, ledger
        self.redis_down_s, self.jitter_s, self.progress, self.rng, self.logs = redis_down_s, jitter_s, progress, rng, logs
        self.injected: list[dict] = []
        self.error: BaseException | None = None
        self.redis_starts = 1

    def run(self) -> None:
        try:
            last_end = 0.0
            for number, (kind, at_chunk) in enumerate(self.schedule, 1):
                while self.progress["chunk"] < at_chunk and not self.progress["done"]:
                    time.sleep(0.05)
                deadline = time.monotonic() + 300
                while not self.fleet.rebuilt_since(last_end) and time.monotonic() < deadline:
                    self.fleet.replace_if_dead()
                    time.sleep(0.05)
                time.sleep(self.rng.uniform(0, self.jitter_s))
                at = elapsed()
                chunk = self.progress["chunk"]
                if kind == "processor":
                    old, new = self.fleet.kill_and_restart()
                    detail = f"kill -9 processor (pid {old}); started processor {len(self.fleet.runs)} (pid {new})"
                else:
                    port = self.server.port
                    give_up = time.monotonic() + self.IN_FLIGHT_WAIT_S
                    while not self.progress["done"] and time.monotonic() < give_up:
                        if self.ledger.in_flight.wait(0.1):
                            time.sleep(self.rng.uniform(0, 0.05))
                            break
                    in_flight = self.ledger.in_flight.is_set()
                    at, chunk = elapsed(), self.progress["chunk"]
                    self.server.kill()
                    shutil.copy2(self.server.workdir / "redis.log", self.logs / f"redis-{self.redis_starts}.log")
                    say(f"FAULT {number}: kill -9 redis-server (port {port}) during chunk {chunk + 1}"
                        f"{', XADDs in flight' if in_flight else ''}; restart in {self.redis_down_s:g} s")
                    time.sleep(self.redis_down_s)
                    t = time.monotonic()
                    self.server.start(timeout=600)
                    self.redis_starts += 1
                    if self.server.port != port:
                        raise RuntimeError(f"redis-server came back on port {self.server.port}, not {port}")
                    detail = (f"kill -9 redis-server{' while XADDs were in flight' if in_flight else ''}; restarted "
                              f"after {self.redis_down_s:g} s, its append-only file reloaded in {time.monotonic() - t:.1f} s")
                last_end = elapsed()
                self.injected.append({"number": number, "kind": kind, "t_s": round(at, 2), "chunk": chunk + 1,
                                      "detail": detail})
                say(f"FAULT {number}: {detail} (chunk {chunk + 1})")
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def fault_schedule(processor_kills: int, redis_kills: int, chunks: int) -> list[tuple[str, int]]:
    """Alternating kinds (processor first), at chunk indexes spread evenly over the replay."""
    kinds = []
    for i in range(max(processor_kills, redis_kills)):
        kinds += (["processor"] if i < processor_kills else []) + (["redis"] if i < redis_kills else [])
    n = len(kinds)
    return [(kind, min(chunks - 1, round((i + 1) * chunks / (n + 1)))) for i, kind in enumerate(kinds)]


# ------------------------------------------------------------------------------------ counting


def _copy_repo(dest: Path, env: dict) -> Path:
    dest.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(ROOT / name, dest / name)
    result = subprocess.run([str(Path(sys.executable).parent / "feast"), "apply"], cwd=dest, env=env,
                            capture_output=True, text=True)
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise SetupError(f"feast apply failed in {dest}: {lines[-1] if lines else f'exit {result.returncode}'}")
    return dest


def _ids(files: list[Path], column: str) -> list[str]:
    import duckdb

    if not files:
        return []
    names = [p.as_posix() for p in files]
    return [r[0] for r in duckdb.execute(f"SELECT {column} FROM read_parquet({names!r}, union_by_name=true)").fetchall()]


def landed(repo: Path, id_fields: dict[str, str]) -> tuple[dict[str, Counter], dict[str, int]]:
    """Event ids landed under data/raw/<kind>/stream/ (with repeats) and each stream's clock: the
    newest landed event time, µs."""
    import duckdb

    from featurelib import paths

    counts, clock = {}, {}
    for kind in KINDS:
        files = sorted((paths.raw_dir(repo) / kind / "stream").rglob("*.parquet"))
        counts[kind] = Counter(_ids(files, id_fields[kind]))
        if files:
            names = [p.as_posix() for p in files]
            clock[kind] = int(duckdb.execute(f"SELECT epoch_us(max(event_timestamp)) FROM read_parquet({names!r})")
                              .fetchone()[0])
    return counts, clock


def quarantined(repo: Path, id_fields: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Event ids (or stream ids, when an entry had no id) quarantined, by kind and reason."""
    import pyarrow.parquet as pq

    from featurelib import paths

    out: dict[str, dict[str, list[str]]] = {}
    for kind in KINDS:
        out[kind] = {"invalid": [], "late": []}
        for path in sorted((paths.data_dir(repo) / "quarantine" / kind).rglob("*.parquet")):
            reason = path.name.split("-", 1)[0]
            if reason not in out[kind]:
                continue  # the batch job's own list (batch-invalid.parquet)
            table = pq.read_table(path)
            if id_fields[kind] in table.column_names:
                out[kind][reason] += table.column(id_fields[kind]).to_pylist()
            else:  # invalid entries: their fields as received
                for sid, fields in zip(table.column("stream_id").to_pylist(), table.column("fields").to_pylist()):
                    found = [f["value"] for f in fields if f["name"] == id_fields[kind].encode()]
                    out[kind][reason].append(found[0].decode(errors="replace") if found else f"entry {sid}")
    return out


def stream_ids(client, streams: dict[str, str], id_fields: dict[str, str]) -> dict[str, Counter]:
    """Event ids of every entry in the streams (with repeats)."""
    out = {}
    for kind, key in streams.items():
        field = id_fields[kind].encode()
        ids: Counter = Counter()
        start = "-"
        while True:
            entries = client.xrange(key, start, "+", count=10_000)
            for _, fields in entries:
                ids[fields.get(field, b"").decode(errors="replace")] += 1
            if len(entries) < 10_000:
                break
            ms, seq = entries[-1][0].decode().split("-")
            start = f"{ms}-{int(seq) + 1}"
        out[kind] = ids
    return out


def online_vs_batch(repo: Path, clock: dict[str, int], client) -> dict:
    """Every entity's online row against its latest batch row at or before its stream's clock.

    A row older than its view's TTL is not served (Feast reports it outside its max age during
    the grace period, then Redis drops the hash): such entities are counted apart, not compared.
    With events ending a day before now, that is most sessions (``session_activity``: 2 days)."""
    import pandas as pd

    from featurelib import contract, paths
    from featurelib import semantics as s
    from featurelib.batch import build_all
    from featurelib.feature_data import offline_path, online_values
    from featurelib.pit import normalize, same
    from featurelib.repo import load_store
    from featurelib.timeutil import SECOND, now_us

    t = time.perf_counter()
    builds = build_all(paths.raw_dir(repo), paths.features_dir(repo))
    batch_s = time.perf_counter() - t
    say(f"batch job over the landed events: {sum(b.rows for b in builds):,} feature rows in {batch_s:.1f} s")
    store = load_store(repo)
    prefix = store.config.online_store.key_prefix
    online_keys: dict[str, set[str]] = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
        try:
            parsed = contract.parse_key(key)
        except ValueError:
            continue
        online_keys.setdefault(parsed.view, set()).add(":".join(parsed.entity_ids))
    by_view, examples = {}, []
    for name, semantics in s.VIEWS.items():
        view = store.get_feature_view(name)
        key = view.join_keys[0]
        offline = pd.read_parquet(offline_path(store, view))
        offline = offline[offline.event_timestamp <= pd.Timestamp(clock.get(semantics.events, 0) * 1000, tz="UTC")]
        latest = offline.sort_values([key, "event_timestamp"]).groupby(key).tail(1).reset_index(drop=True)
        ids = latest[key].tolist()
        ttl_us = int(view.ttl.total_seconds() * SECOND) if view.ttl else 0
        checked = mismatching = missing = past_ttl = 0
        for start in range(0, len(ids), 1000):
            online = online_values(store, view, ids[start:start + 1000])
            read_us = now_us()
            for j, o in enumerate(online):
                row = latest.iloc[start + j]
                if ttl_us and row.event_timestamp.value // 1000 + ttl_us <= read_us:
                    past_ttl += 1
                    continue
                checked += 1
                if not o["present"]:
                    missing += 1
                    if len(examples) < EXAMPLES:
                        examples.append({"view": name, "entity": row[key], "problem": "missing online",
                                         "batch_event_us": row.event_timestamp.value // 1000})
                    continue
                batch_us = row.event_timestamp.value // 1000
                bad = [f.name for f in view.features if not same(o["values"][f.name], row[f.name])]
                if bad or o["event_us"] != batch_us:
                    mismatching += 1
                    if len(examples) < EXAMPLES:
                        examples.append({"view": name, "entity": row[key], "problem": "mismatch",
                                         "online_event_us": o["event_us"], "batch_event_us": batch_us,
                                         "features": {f: {"online": repr(normalize(o["values"][f])),
                                                          "batch": repr(normalize(row[f]))} for f in bad}})
        extra = sorted(online_keys.get(name, set()) - set(ids))
        for entity in extra[:max(0, EXAMPLES - len(examples))]:
            examples.append({"view": name, "entity": entity, "problem": "online row without a batch row"})
        by_view[name] = {"entities": checked, "mismatching": mismatching, "missing_online": missing,
                         "past_ttl": past_ttl, "online_without_batch_row": len(extra)}
        say(f"online vs batch, {name}: {checked:,} entities compared, {mismatching} mismatching, {missing} missing "
            f"online, {len(extra)} online without a batch row; {past_ttl:,} past the view's TTL")
    return {"batch_seconds": round(batch_s, 1), "batch_rows": sum(b.rows for b in builds),
            "clock_us": clock,
            "entities_checked": sum(v["entities"] for v in by_view.values()),
            "mismatching_entities": sum(v["mismatching"] for v in by_view.values()),
            "missing_online": sum(v["missing_online"] for v in by_view.values()),
            "past_ttl": sum(v["past_ttl"] for v in by_view.values()),
            "online_without_batch_row": sum(v["online_without_batch_row"] for v in by_view.values()),
            "by_view": by_view, "examples": examples}


# ------------------------------------------------------------------------------------ main


@click.command()
@click.option("--cards", default=5_000, show_default=True)
@click.option("--days", default=7.0, show_default=True)
@click.option("--seed", default=5, show_default=True, help="Seed of the generated events and of the faults' moments.")
@click.option("--processor-kills", default=3, show_default=True)
@click.option("--redis-kills", default=3, show_default=True)
@click.option("--chunk", default=20_000, show_default=True, help="Events per replay chunk (sent again whole after a failure).")
@click.option("--max-backlog", default=60_000, show_default=True,
              help="The producer waits while more entries than this are not acknowledged.")
@click.option("--redis-down", "redis_down_s", default=1.0, show_default=True,
              help="Seconds between killing the redis-server and restarting it.")
@click.option("--jitter", "jitter_s", default=1.0, show_default=True,
              help="A fault comes at a random moment within this many seconds of its chunk.")
@click.option("--timeout", "timeout_s", default=1800.0, show_default=True,
              help="Seconds to wait for the processor to consume everything after the replay.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(cards: int, days: float, seed: int, processor_kills: int, redis_kills: int, chunk: int, max_backlog: int,
         redis_down_s: float, jitter_s: float, timeout_s: float, out: Path) -> None:
    """Kill processors and redis-servers during a replay; count what was lost or duplicated and
    compare every entity's online row with a batch recomputation."""
    import redis

    from featurelib.errors import first_line
    from featurelib.generate import GeneratorConfig, generate
    from featurelib.raw_events import ID_FIELD
    from featurelib.redis_server import RedisServer, free_port, probe_client
    from featurelib.stream.events import STREAMS
    from featurelib.stream.replay import replay
    from featurelib.timeutil import DAY, SECOND, now_us

    id_fields = {k: ID_FIELD[k] for k in KINDS}
    streams = {k: STREAMS[k] for k in KINDS}
    logs = out / "faults-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    rng = random.Random(seed)

    with tempfile.TemporaryDirectory(prefix="faults-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            server = RedisServer(free_port(), durable=True, workdir=tmp / "redis").start()
        except Exception as exc:
            raise SetupError(f"cannot start a private redis-server: {first_line(exc)}") from None
        fleet: Fleet | None = None
        try:
            env = {**os.environ, "REDIS_CONNECTION_STRING": server.connection_string,
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
            os.environ["REDIS_CONNECTION_STRING"] = server.connection_string
            say(f"private redis-server on {server.connection_string} (append-only file, appendfsync everysec)")
            repo = _copy_repo(tmp / "repo", env)
            source = tmp / "replay"
            cfg = GeneratorConfig(n_cards=cards, days=days, seed=seed, end_us=now_us() // SECOND * SECOND - DAY)
            try:
                files = generate(cfg, source)
            except Exception as exc:
                raise SetupError(f"cannot generate the events: {first_line(exc)}") from None
            import pyarrow.parquet as pq

            data_set = sum(pq.ParquetFile(p).metadata.num_rows for p in files.values())
            chunks = [(skip, min(chunk, data_set - skip)) for skip in range(0, data_set, chunk)]
            schedule = fault_schedule(processor_kills, redis_kills, len(chunks))
            say(f"{data_set:,} events generated ({cards:,} cards over {days:g} days, seed {seed}); {len(chunks)} chunks "
                f"of up to {chunk:,}; faults at chunks {', '.join(f'{c + 1} ({k})' for k, c in schedule)}")

            client = probe_client("127.0.0.1", server.port, timeout=60)
            ledger = Ledger(id_fields, streams)
            counting = CountingClient(client, ledger)
            fleet = Fleet(repo, env, logs)
            first = fleet.start()
            deadline = time.monotonic() + 300
            while not first.rebuilds():
                if not first.alive:
                    first.ended_on_its_own()
                    tail = first.lines[-1][1] if first.lines else ""
                    raise SetupError(f"the processor exited with code {first.exit_code} at start: {tail}")
                if time.monotonic() > deadline:
                    raise SetupError("the processor did not start consuming within 300 s")
                time.sleep(0.05)
            say(f"processor 1 (pid {first.pid}) consuming")
        except BaseException as exc:
            if fleet is not None:
                for run in fleet.runs:
                    if run.alive:
                        run.kill()
            server.stop()
            if isinstance(exc, Exception) and not isinstance(exc, click.ClickException):
                raise SetupError(f"set-up failed: {type(exc).__name__}: {first_line(exc)}") from None
            raise

        try:
            results = _run(server, client, counting, ledger, fleet, source, chunks, schedule, streams, id_fields,
                           repo, rng, redis_down_s, jitter_s, max_backlog, timeout_s, logs, data_set, replay, redis)
        finally:
            for run in fleet.runs:
                if run.alive:
                    run.kill()
            if (server.workdir / "redis.log").exists():
                shutil.copy2(server.workdir / "redis.log", logs / "redis-last.log")
            server.stop()
    results["config"] = {"cards": cards, "days": days, "seed": seed, "processor_kills": processor_kills,
                         "redis_kills": redis_kills, "chunk": chunk, "chunks": len(chunks), "max_backlog": max_backlog,
                         "redis_down_s": redis_down_s, "jitter_s": jitter_s}
    missed = _report(out, results)
    if missed:
        click.echo(f"TARGETS MISSED: {'; '.join(missed)} (see {out / 'faults.json'} and {logs})", err=True)
        sys.exit(1)


def _run(server, client, counting, ledger, fleet, source, chunks, schedule, streams, id_fields, repo, rng,
         redis_down_s, jitter_s, max_backlog, timeout_s, logs, data_set, replay, redis) -> dict:
    from featurelib.errors import first_line

    keys = list(streams.values())
    progress = {"chunk": 0, "done": False}
    faults = Faults(schedule, fleet, server, ledger, redis_down_s, jitter_s, progress, rng, logs)
    faults.start()
    retries, waited_s = [], 0.0
    produce_started = time.monotonic()
    last_note = 0.0
    for index, (skip, limit) in enumerate(chunks):
        progress["chunk"] = index
        while True:
            try:
                while backlog(client, ledger) > max_backlog:
                    fleet.replace_if_dead()
                    time.sleep(0.05)
                replay(counting, source, skip=skip, limit=limit, streams=streams)
                break
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                say(f"producer: chunk {index + 1}: {first_line(exc)}; waiting for Redis, then sending the chunk again")
                waited = wait_for_redis(client)
                waited_s += waited
                retries.append({"chunk": index + 1, "t_s": round(elapsed(), 2), "error": first_line(exc),
                                "waited_s": round(waited, 2)})
                say(f"producer: Redis answers again after {waited:.1f} s; sending chunk {index + 1} again")
        if time.monotonic() - last_note >= 2 or index == len(chunks) - 1:
            say(f"producer: chunk {index + 1}/{len(chunks)} sent, {len(ledger.answered):,} of {data_set:,} events "
                f"produced")
            last_note = time.monotonic()
    produce_s = time.monotonic() - produce_started
    progress["done"] = True
    faults.join()
    if faults.error is not None:
        raise click.ClickException(f"injecting a fault failed: {first_line(faults.error)}")

    say("replay done; waiting until every entry is delivered and acknowledged")
    deadline, last_note, done = time.monotonic() + timeout_s, time.monotonic(), False
    while time.monotonic() < deadline:
        fleet.replace_if_dead()
        try:
            if consumed(client, keys):
                done = True
                break
            if time.monotonic() - last_note >= 5:
                say(f"waiting: {backlog(client, ledger):,} entries not acknowledged yet")
                last_note = time.monotonic()
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        time.sleep(0.2)
    if not done:
        say(f"NOT CONSUMED: entries still unacknowledged after {timeout_s:g} s")
    last = fleet.current
    code = last.stop()
    say(f"processor {last.number} stopped with SIGTERM: exit code {code}")

    say("counting the streams, the landed events and the quarantine")
    in_streams = stream_ids(client, streams, id_fields)
    landed_counts, clock = landed(repo, id_fields)
    quarantine = quarantined(repo, id_fields)
    produced = ledger.answered
    landed_ids = set().union(*(set(c) for c in landed_counts.values()))
    quarantined_ids = set().union(*(set(v) for q in quarantine.values() for v in q.values()))
    lost = produced - landed_ids - quarantined_ids
    stream_entries = sum(sum(c.values()) for c in in_streams.values())
    stream_unique = set().union(*(set(c) for c in in_streams.values()))
    finals = [r.final_stats() for r in fleet.runs]
    runs = [r.summary() for r in fleet.runs]
    events = {
        "data_set": data_set,
        "produced": len(produced),
        "xadds_sent": ledger.xadds_answered + ledger.xadds_unanswered,
        "xadds_answered": ledger.xadds_answered,
        "xadds_without_reply": ledger.xadds_unanswered,
        "resent_after_a_reply": ledger.resent_after_answer,
        "chunks_sent_again": len(retries),
        "stream_entries": stream_entries,
        "entries_sent_twice": stream_entries - len(stream_unique),
        "in_streams_not_produced": len(stream_unique - produced),
        "landed": len(landed_ids),
        "landed_by_kind": {k: len(c) for k, c in landed_counts.items()},
        "duplicated": sum(sum(c.values()) - len(c) for c in landed_counts.values()),
        "landed_not_produced": len(landed_ids - produced),
        "applied_final_stats": sum(f["applied"] for f in finals if f),
        "duplicates_dropped_final_stats": sum(f["duplicates"] for f in finals if f),
        "final_stats_printed_by": [r.number for r, f in zip(fleet.runs, finals) if f],
        "quarantined": len(quarantined_ids),
        "quarantined_invalid": sum(len(q["invalid"]) for q in quarantine.values()),
        "quarantined_late": sum(len(q["late"]) for q in quarantine.values()),
        "landed_and_quarantined": len(landed_ids & quarantined_ids),
        "lost": len(lost),
        "lost_examples": sorted(lost)[:EXAMPLES],
        "duplicated_examples": sorted(i for c in landed_counts.values() for i, n in c.items() if n > 1)[:EXAMPLES],
    }
    say(f"produced {events['produced']:,}, landed {events['landed']:,}, landed twice {events['duplicated']}, "
        f"quarantined {events['quarantined']}, lost {events['lost']}; entries sent twice {events['entries_sent_twice']:,}")
    comparison = online_vs_batch(repo, clock, client)
    rebuilds = [dict(b, processor=r["number"]) for r in runs for b in r["rebuilds"]]
    return {
        "events": events,
        "faults": faults.injected,
        "producer": {"seconds": round(produce_s, 1), "waited_for_redis_s": round(waited_s, 1), "retries": retries},
        "processors": runs,
        "unexpected_exits": fleet.unexpected_exits,
        "reconnects": sum(r["reconnects"] for r in runs),
        "rebuilds": rebuilds,
        "consumed": done,
        "final_exit_code": code,
        "online_vs_batch": comparison,
        "wall_seconds": round(elapsed(), 1),
    }


def _report(out: Path, results: dict) -> list[str]:
    ev, ob, cfg = results["events"], results["online_vs_batch"], results["config"]
    kinds = Counter(f["kind"] for f in results["faults"])
    starts = [b for b in results["rebuilds"] if b["after"] == "start"]
    reconnects = [b for b in results["rebuilds"] if b["after"] == "reconnect"]
    missed = []
    for ok, what in ((ev["lost"] == 0, f"{ev['lost']} lost"), (ev["duplicated"] == 0, f"{ev['duplicated']} landed twice"),
                     (ev["produced"] == ev["data_set"], f"{ev['data_set'] - ev['produced']} events never produced"),
                     (ev["landed_not_produced"] == 0, f"{ev['landed_not_produced']} landed but never produced"),
                     (ob["mismatching_entities"] == 0, f"{ob['mismatching_entities']} mismatching entities"),
                     (ob["missing_online"] == 0, f"{ob['missing_online']} entities missing online"),
                     (ob["online_without_batch_row"] == 0, f"{ob['online_without_batch_row']} online rows without a batch row"),
                     (results["consumed"], "the processor did not consume every entry"),
                     (results["final_exit_code"] == 0, f"the last processor exited {results['final_exit_code']}"),
                     (not results["unexpected_exits"], f"{len(results['unexpected_exits'])} unexpected processor exits"),
                     (kinds["processor"] == cfg["processor_kills"] and kinds["redis"] == cfg["redis_kills"],
                      "not every fault was injected")):
        if not ok:
            missed.append(what)
    results["targets_met"] = not missed
    results["targets_missed"] = missed

    def seconds(items: list[dict]) -> str:
        return "; ".join(f"{b['seconds']:.1f}" for b in items) or "none"

    lines = [
        "| measurement | value | target |", "|---|---:|---:|",
        f"| events in the replay ({cfg['cards']:,} cards over {cfg['days']:g} days, both streams) | {ev['data_set']:,} | |",
        f"| events produced (unique ids whose `XADD` was answered) | {ev['produced']:,} | all |",
        f"| `XADD`s sent, with retries ({ev['chunks_sent_again']} chunks sent again) | {ev['xadds_sent']:,} | |",
        f"| stream entries sent twice (an event id in a stream again; dropped by id) | {ev['entries_sent_twice']:,} | |",
        f"| landed (unique event ids in `data/raw/<stream>/stream/`) | {ev['landed']:,} | = produced |",
        f"| duplicated (landed copies beyond the first) | {ev['duplicated']:,} | 0 |",
        f"| applied, as the final stats lines count it ({len(ev['final_stats_printed_by'])} of "
        f"{len(results['processors'])} processors printed one: killed ones print none; entries read again after "
        f"a reconnect count again) | {ev['applied_final_stats']:,} | |",
        f"| quarantined (invalid + late) | {ev['quarantined_invalid']:,} + {ev['quarantined_late']:,} | |",
        f"| lost (produced, neither landed nor quarantined) | {ev['lost']:,} | 0 |",
        f"| faults injected: processor kills + redis-server kills (SIGKILL) | {kinds['processor']} + {kinds['redis']} | "
        f"{cfg['processor_kills']} + {cfg['redis_kills']} |",
        f"| reconnects of the processor to the restarted redis-server | {results['reconnects']} | |",
        f"| processor start, launch to consuming (Python, Feast registry, lease, state rebuilt), s | "
        f"{seconds(starts)} | |",
        f"| state rebuilt after a reconnect, Redis back to consuming, s | {seconds(reconnects)} | |",
        f"| exit code of the last processor (SIGTERM) | {results['final_exit_code']} | 0 |",
        f"| online vs batch: entities compared (5 views) | {ob['entities_checked']:,} | |",
        f"| entities whose latest row is past its view's TTL (not served by design; not compared) | "
        f"{ob['past_ttl']:,} | |",
        f"| online vs batch: mismatching entities | {ob['mismatching_entities']:,} | 0 |",
        f"| online vs batch: missing online | {ob['missing_online']:,} | 0 |",
        f"| online rows without a batch row | {ob['online_without_batch_row']:,} | 0 |",
        f"| wall time (replay {results['producer']['seconds']:.0f} s) | {results['wall_seconds']:.0f} s | |",
    ]
    if ob["examples"]:
        lines += ["", "Examples:", *(f"- {e}" for e in ob["examples"])]
    odd = [f"- processor {r['number']}: {line}" for r in results["processors"] for line in r["suspicious"]]
    if odd:
        lines += ["", "Processor log lines worth a look:", *odd]
    if missed:
        lines += ["", f"**Targets missed:** {'; '.join(missed)}"]
    save(out, "faults", results, lines)
    return missed


if __name__ == "__main__":
    main()
