#!/usr/bin/env python
"""Serving benchmark: this repository's read path, stock Feast and the floor, over the SDK and HTTP.

Same data, same machine, one run. Each setup reads from its own private redis-server (same binary,
same settings), materialized from the same generated feature rows:

* **this repo**: a copy of the repository as it is at run time (``feature_store.yaml`` unchanged,
  so whatever ``provider:`` and online store it names) and ``feature_utils.py serve``;
* **Feast stock**: the same copy with ``provider: local``, Feast's own ``type: redis`` online store and
  Feast's own materialization engine, and ``feast serve`` as plain Feast users run it (1 worker,
  ``--max-requests 1000``);
* **floor**: redis-py against this repo's Redis: one pipelined ``HMGET`` of the hashes the
  ``fraud_detection`` service reads, the values decoded in plain Python and the on-demand view's
  function called on them.

Measured:

1. SDK: ``get_online_features(features=<FeatureService>, entity_rows=...).to_dict()`` of
   ``fraud_detection`` for 1, 10 and 100 entities, and 3 features of the seed example for 1 entity;
   p50 and p99 over ``--reads`` calls after a warm-up (the floor does the same work by hand, and
   its answers are checked against the SDK's).
2. HTTP, one keep-alive client in series: ``POST /get-online-features`` (``fraud_detection``, 1 card)
   and ``GET /health`` of the same server, p50 and p99.
3. HTTP under load (``wrk``, or a multi-process Python client when ``wrk`` is not installed) at
   concurrency 1, 8 and 32 for ``--duration`` seconds each after a warm-up, for both bodies
   (``fraud_detection`` and the seed features, 1 card): requests/s, p50, p99, max, errors.
4. One long run against this repo's server: ``--long-requests`` requests of ``fraud_detection`` at
   concurrency 8; its max latency and how many requests took more than 100 ms.

    python bench/serving.py                      # 5,000 cards, 2,000 reads, 10 s per load run
    python bench/serving.py --cards 200 --reads 20 --duration 1 --long-requests 200

Writes bench/results/serving.{json,md} and serving.png (p99 latency and throughput against
concurrency, both servers, both bodies). A server that cannot start (say ``feature_utils.py`` has
no ``serve`` command yet) is reported as not available, and the run goes on without it.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import numpy as np
from report import percentiles, save, timed  # bench/report.py (this script's directory is on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", "feature_utils.py", ".feastignore"]
STORED_VIEWS = ["transaction_stats_5m", "card_profile_24h", "device_activity_24h"]
SEED_FEATURES = ["transaction_stats_5m:txn_count_5m", "transaction_stats_5m:amount_avg_5m",
                 "transaction_stats_5m:velocity_score"]
REQUEST_FIELDS = ["txn_amount", "txn_country", "txn_merchant_category", "txn_unix_us"]
ODFV = "transaction_request_features"
SETUPS = ("this repo", "Feast stock")
SERVE_COMMANDS = {  # each run in its setup's repository copy, "--port P" appended
    "this repo": [sys.executable, "feature_utils.py", "serve", "--host", "127.0.0.1"],
    "Feast stock": [str(BIN / "feast"), "serve", "--host", "127.0.0.1"],  # Feast's defaults otherwise
}
FLOOR = "floor"
CONCURRENCY = (1, 8, 32)
LONG_CONCURRENCY = 8
SLOW_MS = 100
WRK_TIMEOUT_S = 10
STARTED = time.monotonic()


def _say(message: str) -> None:
    click.echo(f"[serving {time.monotonic() - STARTED:7.1f}s] {message}", err=True)


# ---------------------------------------------------------------------------- repository copies


def _copy(dest: Path, raw: Path) -> Path:
    """The repository's files as they are now, and the generated feature rows."""
    dest.mkdir(parents=True)
    for name in REPO_FILES:
        shutil.copy2(ROOT / name, dest / name)
    (dest / "data").mkdir()
    shutil.copytree(raw / "features", dest / "data" / "features")
    return dest


def _stock_yaml(text: str, connection_string: str) -> str:
    """This repo's configuration with Feast's own pieces: local provider, Feast's Redis store, Feast's
    materialization engine."""
    import yaml

    cfg = yaml.safe_load(text)
    cfg["provider"] = "local"
    cfg["online_store"] = {"type": "redis", "connection_string": connection_string}
    cfg.pop("batch_engine", None)
    return "# Stock Feast: provider local, Feast's Redis online store, Feast's local engine.\n" + \
        yaml.safe_dump(cfg, sort_keys=False)


def _apply_and_materialize(path: Path, end: datetime):
    from feast import FeatureStore

    from featurelib.repo import quiet
    from featurelib.validation import code_definitions

    os.chdir(path)
    try:
        with quiet():
            store = FeatureStore(repo_path=str(path))
            contents = code_definitions(path)
            store.apply([*contents.entities, *contents.data_sources, *contents.feature_views,
                         *contents.on_demand_feature_views, *contents.feature_services])
            store.materialize(end - timedelta(days=7), end, feature_views=STORED_VIEWS)
    finally:
        os.chdir(ROOT)
    return store


def _cell(m: dict | None) -> str:
    return f"{m['p50_ms']} / {m['p99_ms']}" if m else "n/a"


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


# ---------------------------------------------------------------------------- the floor


def _decoder(value_type) -> Any:
    """The contract's text of a value type back to Python (featurelib/contract.py's CODECS)."""
    name = value_type.name
    if name.endswith("_LIST"):
        return json.loads  # a JSON array: card_countries_24h is '["DE","US"]'
    if name in ("INT32", "INT64", "UNIX_TIMESTAMP"):
        return int
    if name in ("FLOAT", "DOUBLE"):
        return float  # float() reads nan, inf and -inf too
    if name == "BOOL":
        return lambda raw: raw == b"true"
    if name == "STRING":
        return bytes.decode
    return bytes


def _floor(client, store, refs_by_view: dict[str, list[str]], rows: list[dict], udf=None):
    """A function doing by hand what a read of ``rows`` costs at least: the same hashes with one
    pipelined HMGET each, the values decoded, the on-demand function called (``udf``)."""
    from featurelib import contract

    specs = []
    for view_name, names in refs_by_view.items():
        view = store.get_feature_view(view_name)
        dtypes = {f.name: f.dtype.to_value_type() for f in view.features}
        specs.append((view_name, view.join_keys, [contract.EVENT_TS, *names], [int, *(_decoder(dtypes[n]) for n in names)]))
    commands = [(contract.hash_key(contract.DEFAULT_PREFIX, join_keys, [row[k] for k in join_keys], view_name), fields,
                 decoders) for row in rows for view_name, join_keys, fields, decoders in specs]
    entity_keys = sorted({k for _, join_keys, _, _ in specs for k in join_keys})
    entities = {k: [row[k] for row in rows] for k in entity_keys}
    request = {k: [row[k] for row in rows] for k in REQUEST_FIELDS} if udf else {}

    def read() -> dict:
        pipe = client.pipeline(transaction=False)
        for key, fields, _ in commands:
            pipe.hmget(key, fields)
        columns: dict[str, list] = {}
        for (_, fields, decoders), values in zip(commands, pipe.execute()):
            for field, decode, raw in zip(fields, decoders, values):
                columns.setdefault(field, []).append(None if raw is None else decode(raw))
        del columns[contract.EVENT_TS]
        out = {**entities, **columns}
        if udf is not None:
            out.update(udf({**columns, **request}))
        return out

    return read


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _compare(answers: dict[str, dict]) -> dict:
    """Values of the keys every answer has, compared with this repo's."""
    reference = answers["this repo"]
    keys = sorted(set.intersection(*(set(a) for a in answers.values())))
    out: dict = {"keys_compared": len(keys), "rows": len(next(iter(reference.values())))}
    for name, answer in answers.items():
        if name == "this repo":
            continue
        bad = [f"{k}[{i}]: {x!r} != {y!r}" for k in keys for i, (x, y) in enumerate(zip(reference[k], answer[k]))
               if not _same(x, y)]
        out[f"mismatches_{name}"] = len(bad)
        if bad:
            out[f"examples_{name}"] = bad[:5]
    return out


# ---------------------------------------------------------------------------- HTTP servers


class Server:
    """A feature server in a subprocess of its own process group, output to a log file."""

    def __init__(self, name: str, args: list[str], cwd: Path, redis_cs: str, log: Path):
        self.name, self.args, self.cwd, self.log = name, args, cwd, log
        self.port = int(args[args.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                    "REDIS_CONNECTION_STRING": redis_cs, "FEAST_REPO": str(cwd), "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> str | None:
        """None once ``GET /health`` answers 200, else why not."""
        import httpx

        with self.log.open("w") as log:
            self.process = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                tail = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()][-3:]
                self.process = None
                return f"exited with code {code}: " + " | ".join(tail)[-400:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return None
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        return f"no 200 from GET /health within {timeout:.0f} s"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        pgid = self.process.pid  # the group this script started (start_new_session)
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process = None


def _serial(url: str, body: bytes | None, n: int) -> dict:
    """One keep-alive client, one request at a time: p50/p99, any non-2xx, and connections the
    server reset (`feast serve` recycles its worker every 1,000 requests or so): such a request
    counts as an error, its time as a sample, and the client reconnects."""
    import httpx

    non_2xx = resets = 0
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:
        def checked():
            nonlocal non_2xx, resets
            try:
                response = client.get(url) if body is None else client.post(url, content=body, headers=headers)
            except httpx.TransportError:
                resets += 1
                return
            if not 200 <= response.status_code < 300:
                non_2xx += 1

        samples = timed(checked, n)
    return {**percentiles(samples), "requests": n, "non_2xx": non_2xx, "connection_resets": resets}


def _exchange(conn: http.client.HTTPConnection, path: str, body: bytes | None, headers: dict) -> int | None:
    """One request on a keep-alive connection (GET without a body, else POST), its response read
    through: the status, or None when the connection failed."""
    try:
        if body is None:
            conn.request("GET", path)
        else:
            conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return None
    return response.status


def _serial_lean(url: str, body: bytes | None, n: int) -> dict:
    """``_serial`` with the standard library's ``http.client`` (a few times less client overhead
    than httpx), so the server's share of the latency weighs more in the ratio."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    non_2xx = resets = 0

    def checked():
        nonlocal conn, non_2xx, resets
        status = _exchange(conn, parts.path, body, headers)
        if status is None:
            resets += 1
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        elif not 200 <= status < 300:
            non_2xx += 1

    samples = timed(checked, n)
    conn.close()
    return {**percentiles(samples), "requests": n, "non_2xx": non_2xx, "connection_resets": resets}


# ---------------------------------------------------------------------------- load generators


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
local quota = {quota}
if quota > 0 then
  -- A request-count run: each thread stops after its share; the script says so, and the
  -- benchmark ends wrk (SIGINT) once every thread has.
  local count = 0
  function response(status, headers, body)
    count = count + 1
    if count == quota then
      io.write("QUOTA_DONE\\n")
      io.flush()
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local n = summary.requests
  -- The latency at a rank (1..n): wrk's percentile() takes the value at rank round(p/100*n + 0.5).
  local function at(rank) return latency:percentile((rank - 0.25) / n * 100) end
  local lo, hi = 1, n + 1  -- the first rank slower than the limit
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if at(mid) > {slow_us} then hi = mid else lo = mid + 1 end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"min_us":%d,"mean_us":%.1f,"max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"over_slow":%d}}\\n',
    n, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), n - lo + 1))
  io.flush()
end
"""


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    words = (out.stdout + out.stderr).split()
    return " ".join(words[:2]) if words and words[0] == "wrk" else "wrk"


def _wrk(url: str, body: bytes, concurrency: int, seconds: float, requests: int, workdir: Path,
         alive) -> dict:
    threads = min(concurrency, 2)
    quota = -(-requests // threads) if requests else 0
    script = workdir / f"wrk-{time.monotonic_ns()}.lua"
    script.write_text(WRK_SCRIPT.format(body=body.decode(), quota=quota, slow_us=SLOW_MS * 1000))
    duration = max(1, math.ceil(seconds)) if not requests else max(120, requests // 20)
    args = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", f"{WRK_TIMEOUT_S}s",
            "-s", str(script), url]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stopping = threading.Event()

    def watch() -> None:  # a dead server would keep the threads from ever reaching their quota
        while proc.poll() is None and not stopping.wait(0.5):
            if not alive():
                proc.send_signal(signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lines, done_threads = [], 0
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("QUOTA_DONE"):
            done_threads += 1
            if done_threads == threads:
                proc.send_signal(signal.SIGINT)
    stderr = proc.stderr.read() if proc.stderr else ""
    proc.wait()
    stopping.set()
    found = [line for line in lines if line.startswith("WRKJSON ")]
    if not found:
        raise RuntimeError(f"wrk printed no summary (exit {proc.returncode}): {''.join(lines)[-1000:]} {stderr[-1000:]}")
    s = json.loads(found[-1][len("WRKJSON "):])
    return {"requests": s["requests"], "seconds": round(s["duration_us"] / 1e6, 3),
            "requests_per_s": round(s["requests"] / (s["duration_us"] / 1e6), 1),
            "p50_ms": s["p50_us"] / 1000, "p90_ms": s["p90_us"] / 1000, "p99_ms": s["p99_us"] / 1000,
            "p999_ms": s["p999_us"] / 1000, "max_ms": s["max_us"] / 1000, "mean_ms": round(s["mean_us"] / 1000, 3),
            "non_2xx": s["status"], "socket_errors": {k: s[k] for k in ("connect", "read", "write", "timeout")},
            f"over_{SLOW_MS}ms": s["over_slow"]}


def _py_worker(url: str, body: bytes, seconds: float, quota: int, ready, go, results) -> None:
    """One connection of the Python load generator (a process of its own)."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=WRK_TIMEOUT_S)

    conn = connect()
    latencies: list[float] = []
    non_2xx = errors = 0
    ready.put(os.getpid())
    go.wait()
    start = time.time()
    stop = time.perf_counter() + seconds
    while (len(latencies) + errors < quota) if quota else (time.perf_counter() < stop):
        t = time.perf_counter()
        status = _exchange(conn, parts.path, body, headers)
        if status is None:
            errors += 1
            conn.close()
            conn = connect()
            continue
        latencies.append(time.perf_counter() - t)
        if not 200 <= status < 300:
            non_2xx += 1
    results.put((latencies, non_2xx, errors, start, time.time()))


def _python_load(url: str, body: bytes, concurrency: int, seconds: float, requests: int) -> dict:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    quota = -(-requests // concurrency) if requests else 0
    workers = [ctx.Process(target=_py_worker, args=(url, body, seconds, quota, ready, go, results), daemon=True)
               for _ in range(concurrency)]
    for w in workers:
        w.start()
    for _ in workers:
        ready.get(timeout=120)
    go.set()
    parts = [results.get(timeout=None if requests else seconds + 300) for _ in workers]
    for w in workers:
        w.join(30)
    latencies = np.array([x for p in parts for x in p[0]]) * 1000
    span = max(p[4] for p in parts) - min(p[3] for p in parts)
    if not len(latencies):
        latencies = np.array([float("nan")])
    return {"requests": int(len(latencies)), "seconds": round(span, 3), "requests_per_s": round(len(latencies) / span, 1),
            **{f"p{q}_ms".replace(".", ""): round(float(np.percentile(latencies, q)), 3) for q in (50, 90, 99, 99.9)},
            "max_ms": round(float(latencies.max()), 3), "mean_ms": round(float(latencies.mean()), 3),
            "non_2xx": sum(p[1] for p in parts), "socket_errors": {"all": sum(p[2] for p in parts)},
            f"over_{SLOW_MS}ms": int((latencies > SLOW_MS).sum())}


def _load(generator: str, url: str, body: bytes, concurrency: int, seconds: float, requests: int, workdir: Path,
          alive) -> dict:
    if generator == "wrk":
        return _wrk(url, body, concurrency, seconds, requests, workdir, alive)
    return _python_load(url, body, concurrency, seconds, requests)


# ---------------------------------------------------------------------------- the run


def _shown(args: list[str]) -> str:
    return " ".join("python" if a == sys.executable else Path(a).name if a == str(BIN / "feast") else a for a in args)


def _measure_server(out: dict, server: Server, bodies: dict[str, bytes], reads: int, duration: float, generator: str,
                    workdir: Path, long_requests: int) -> None:
    """Fills ``out`` as it goes, so a server dying half way leaves what was measured before."""
    endpoint = f"{server.url}/get-online-features"
    out["serial"] = {"fraud_detection": _serial(endpoint, bodies["fraud_detection"], reads),
                     "health": _serial(f"{server.url}/health", None, reads)}
    _say(f"{server.name}: serial fraud_detection {_cell(out['serial']['fraud_detection'])} ms, "
         f"GET /health {_cell(out['serial']['health'])} ms (p50 / p99)")
    out["serial_lean"] = {"fraud_detection": _serial_lean(endpoint, bodies["fraud_detection"], reads),
                          "health": _serial_lean(f"{server.url}/health", None, reads)}
    _say(f"{server.name}: serial (http.client) fraud_detection {_cell(out['serial_lean']['fraud_detection'])} ms, "
         f"GET /health {_cell(out['serial_lean']['health'])} ms (p50 / p99)")
    warmup = 1 if duration <= 4 else 2
    out["load"] = {}
    for body_name, body in bodies.items():
        for c in CONCURRENCY:
            if not server.alive:
                raise RuntimeError(f"{server.name}'s server died")
            _load(generator, endpoint, body, c, warmup, 0, workdir, lambda: server.alive)
            r = _load(generator, endpoint, body, c, duration, 0, workdir, lambda: server.alive)
            out["load"].setdefault(body_name, {})[str(c)] = r
            _say(f"{server.name}: {body_name} at concurrency {c}: {r['requests_per_s']:,} requests/s, "
                 f"p50 {r['p50_ms']} p99 {r['p99_ms']} max {r['max_ms']} ms, non-2xx {r['non_2xx']}, "
                 f"socket errors {sum(r['socket_errors'].values())}")
    if long_requests:
        _say(f"{server.name}: long run, {long_requests:,} requests of fraud_detection at concurrency {LONG_CONCURRENCY}")
        r = _load(generator, endpoint, bodies["fraud_detection"], LONG_CONCURRENCY, 0, long_requests, workdir,
                  lambda: server.alive)
        out["long_run"] = {"body": "fraud_detection", "concurrency": LONG_CONCURRENCY, "requested": long_requests, **r}
        _say(f"{server.name}: long run: {r['requests']:,} requests in {r['seconds']} s, max {r['max_ms']} ms, "
             f"{r[f'over_{SLOW_MS}ms']} over {SLOW_MS} ms, non-2xx {r['non_2xx']}")
    out["alive_at_end"] = server.alive


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, tput) = plt.subplots(1, 2, figsize=(11, 4.2))
    for setup, style in zip(SETUPS, ("-", "--")):
        server = results["http"].get(setup, {})
        for body_name, marker in (("fraud_detection", "o"), ("seed_features", "s")):
            runs = server.get("load", {}).get(body_name)
            if not runs:
                continue
            cs = [int(c) for c in runs]
            label = f"{setup}: {body_name}"
            lat.plot(cs, [runs[str(c)]["p99_ms"] for c in cs], style, marker=marker, label=label)
            tput.plot(cs, [runs[str(c)]["requests_per_s"] for c in cs], style, marker=marker, label=label)
    for ax, title, unit in ((lat, "p99 latency", "ms"), (tput, "throughput", "requests/s")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(unit)
        ax.set_title(f"{title}, 1 card per request")
        ax.grid(alpha=0.3)
    lat.set_yscale("log")
    lat.legend(fontsize=8)
    fig.suptitle(f"POST /get-online-features ({results['load_generator']}, {results['duration']} s per point, "
                 f"{results['cards']:,} cards)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(results: dict) -> list[str]:
    sdk, http = results["sdk"], results["http"]
    ours, stock = http.get("this repo", {}), http.get("Feast stock", {})

    def server_cell(server: dict, *keys: str) -> str:
        if not server.get("available"):
            return "not available"
        value: Any = server
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        return _cell(value)

    lines = [f"Setups: this repo = `provider: {results['setups']['this repo']['provider']}` + "
             f"`{ours.get('command', 'python feature_utils.py serve')}`; Feast stock = `provider: local`, "
             "`type: redis`, `feast serve` (defaults); floor = redis-py pipelined HMGET + decode + on-demand "
             f"function. {results['cards']:,} cards, {results['reads']:,} reads per SDK/serial row; load by "
             f"{results['load_generator']}, {results['duration']} s per run.", "",
             "| path (p50 / p99 ms) | this repo | Feast stock | floor |", "|---|---:|---:|---:|"]
    for key, label in (("fraud_detection_1", "SDK fraud_detection, 1 entity"),
                       ("fraud_detection_10", "SDK fraud_detection, 10 entities"),
                       ("fraud_detection_100", "SDK fraud_detection, 100 entities"),
                       ("seed_features_1", "SDK 3 seed features, 1 entity")):
        lines.append(f"| {label} | " + " | ".join(_cell(sdk[key].get(s)) for s in (*SETUPS, FLOOR)) + " |")
    lines.append("| HTTP fraud_detection, 1 card, serial | " + server_cell(ours, "serial", "fraud_detection") + " | "
                 + server_cell(stock, "serial", "fraud_detection") + " | |")
    lines.append("| HTTP GET /health, serial | " + server_cell(ours, "serial", "health") + " | "
                 + server_cell(stock, "serial", "health") + " | |")
    lines.append("| HTTP fraud_detection, 1 card, serial (http.client) | "
                 + server_cell(ours, "serial_lean", "fraud_detection") + " | "
                 + server_cell(stock, "serial_lean", "fraud_detection") + " | |")
    lines.append("| HTTP GET /health, serial (http.client) | " + server_cell(ours, "serial_lean", "health") + " | "
                 + server_cell(stock, "serial_lean", "health") + " | |")
    if ours.get("available") is False:
        lines += ["", f"this repo's server not available: {ours['reason']}"]
    if stock.get("available") is False:
        lines += ["", f"Feast stock's server not available: {stock['reason']}"]
    for name, server in (("this repo", ours), ("Feast stock", stock)):
        resets = sum((server.get("serial", {}).get(k) or {}).get("connection_resets", 0) for k in ("fraud_detection",
                                                                                                   "health"))
        if resets:
            lines += ["", f"{name}'s server reset {resets} connection(s) of the serial client (a recycled worker)."]
        if server.get("error"):
            lines += ["", f"{name}'s server: measurement stopped early: {server['error']}"]

    lines += ["", "| HTTP load, 1 card | concurrency | this repo: requests/s | p50 / p99 / max ms | errors "
              "| Feast stock: requests/s | p50 / p99 / max ms | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def load_cells(server: dict, body: str, c: int) -> str:
        r = server.get("load", {}).get(body, {}).get(str(c))
        if not r:
            return "not available | | " if server.get("available") is False else "n/a | | "
        errors = r["non_2xx"] + sum(r["socket_errors"].values())
        return f"{r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['max_ms']:.1f} | {errors}"

    for body in ("fraud_detection", "seed_features"):
        for c in CONCURRENCY:
            lines.append(f"| {body} | {c} | {load_cells(ours, body, c)} | {load_cells(stock, body, c)} |")

    ratios = results["ratios"]
    lines += ["", "| target ratio | this repo | Feast stock |", "|---|---:|---:|"]
    for key, label in (("sdk_fraud_1_over_floor", "SDK fraud_detection 1 entity p50 / floor p50"),
                       ("sdk_fraud_100_over_floor", "SDK fraud_detection 100 entities p50 / floor p50"),
                       ("http_fraud_over_health", "HTTP fraud_detection p50 / GET /health p50 (serial)"),
                       ("http_fraud_over_health_lean", "the same with http.client as the client"),
                       ("http_p99_over_p50", "HTTP fraud_detection p99 / p50 (serial)"),
                       ("http_p99_over_p50_c32", "HTTP fraud_detection p99 / p50 at concurrency 32")):
        cells = [ratios[key].get(s) for s in SETUPS]
        lines.append(f"| {label} | " + " | ".join("n/a" if v is None else f"{v}x" for v in cells) + " |")
    for body in ("fraud_detection", "seed_features"):
        v = ratios[f"throughput_c32_{body}"]
        lines.append(f"| requests/s at concurrency 32, {body}: this repo / Feast stock | "
                     f"{'n/a' if v is None else f'{v}x'} | |")
    long = ours.get("long_run")
    if long:
        errors = long["non_2xx"] + sum(long["socket_errors"].values())
        lines.append(f"| long run: {long['requests']:,} requests at concurrency {long['concurrency']}: max ms | "
                     f"{long['max_ms']} | |")
        lines.append(f"| long run: requests over {SLOW_MS} ms | {long[f'over_{SLOW_MS}ms']} | |")
        lines.append(f"| long run: p50 / p99 ms, requests/s, errors | {long['p50_ms']} / {long['p99_ms']}, "
                     f"{long['requests_per_s']:,.0f}, {errors} | |")
    else:
        lines.append(f"| long run | {results.get('long_run_note', 'not run')} | |")
    checks = results["answers"]
    lines += ["", f"Same answers: SDK fraud_detection for {checks['rows']} entities, {checks['keys_compared']} "
              f"columns: Feast stock differs from this repo in {checks['mismatches_Feast stock']} values, the floor in "
              f"{checks['mismatches_floor']}."]
    return lines


@click.command()
@click.option("--cards", default=5_000, show_default=True)
@click.option("--reads", default=2_000, show_default=True, help="Timed calls per SDK size and per serial HTTP row.")
@click.option("--duration", default=10.0, show_default=True, help="Seconds of each load run (after a warm-up).")
@click.option("--long-requests", default=100_000, show_default=True,
              help="Requests of the long run against this repo's server (0: skip it).")
@click.option("--load-generator", type=click.Choice(["auto", "wrk", "python"]), default="auto", show_default=True,
              help="auto: wrk when it is on PATH, else the multi-process Python client.")
@click.option("--out", type=click.Path(path_type=Path), default=HERE / "results", show_default=True)
def main(cards: int, reads: int, duration: float, long_requests: int, load_generator: str, out: Path) -> None:
    """Compare the serving paths: SDK, serial HTTP and HTTP under load."""
    import feast
    import pandas as pd

    from featurelib.batch import build_all
    from featurelib.generate import GeneratorConfig, generate
    from featurelib.redis_server import RedisServer, free_port

    generator = load_generator if load_generator != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if generator == "wrk" and not shutil.which("wrk"):
        raise click.UsageError("wrk is not on PATH")
    results: dict = {"cards": cards, "reads": reads, "duration": duration, "long_requests": long_requests,
                     "load_generator": _wrk_version() if generator == "wrk" else "Python multi-process client (no wrk)",
                     "feast": feast.__version__, "cpus": os.cpu_count()}
    _say(f"load generator: {results['load_generator']}")
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp_name, RedisServer() as ours_redis, \
            RedisServer() as stock_redis:
        tmp = Path(tmp_name)
        # This process's stores read REDIS_CONNECTION_STRING when they are created: never the default.
        os.environ["REDIS_CONNECTION_STRING"] = ours_redis.connection_string
        redis_of = {"this repo": ours_redis, "Feast stock": stock_redis}
        end = datetime.now(timezone.utc).replace(microsecond=0)
        cfg = GeneratorConfig(n_cards=cards, days=7, seed=5, end_us=int(end.timestamp() * 1_000_000))
        _say(f"generating {cards:,} cards over 7 days and building the feature rows")
        generate(cfg, tmp / "raw")
        build_all(tmp / "raw", tmp / "raw" / "features", workers=2)

        import yaml

        paths = {"this repo": _copy(tmp / "ours", tmp / "raw"), "Feast stock": _copy(tmp / "stock", tmp / "raw")}
        stock_yaml = paths["Feast stock"] / "feature_store.yaml"
        stock_yaml.write_text(_stock_yaml(stock_yaml.read_text(), stock_redis.connection_string))
        results["setups"] = {name: {"provider": yaml.safe_load((p / "feature_store.yaml").read_text()).get("provider"),
                                    "online_store": yaml.safe_load((p / "feature_store.yaml").read_text()).get("online_store")}
                             for name, p in paths.items()}
        stores = {}
        for name, path in paths.items():
            _say(f"{name}: feast apply and materialize into its redis-server on port {redis_of[name].port}")
            stores[name] = _apply_and_materialize(path, end)

        # -------- SDK
        ours = stores["this repo"]
        txns = pd.read_parquet(tmp / "raw" / "transactions" / "generated.parquet", columns=["card_id", "device_id"])
        pairs = txns.drop_duplicates("card_id").sample(frac=1, random_state=1).head(200).to_dict("records")
        now_us = int(time.time() * 1_000_000)

        def entity_rows(n: int) -> list[dict]:
            return [{"card_id": p["card_id"], "device_id": p["device_id"], "txn_amount": 42.0 + i, "txn_country": "US",
                     "txn_merchant_category": "grocery" if i % 3 else "crypto", "txn_unix_us": now_us}
                    for i, p in enumerate(pairs[:n])]

        udf = ours.get_on_demand_feature_view(ODFV).feature_transformation.udf
        fraud_refs = {v: [f.name for f in ours.get_feature_view(v).features] for v in STORED_VIEWS}
        seed_refs: dict[str, list[str]] = {}
        for ref in SEED_FEATURES:
            view, feature = ref.split(":")
            seed_refs.setdefault(view, []).append(feature)
        services = {name: store.get_feature_service("fraud_detection") for name, store in stores.items()}
        floor_client = ours_redis.client()
        sdk: dict = {}
        for size in (1, 10, 100):
            rows = entity_rows(size)
            key = f"fraud_detection_{size}"
            for name, store in stores.items():
                sdk.setdefault(key, {})[name] = percentiles(timed(
                    lambda s=store, svc=services[name], r=rows: s.get_online_features(features=svc, entity_rows=r).to_dict(),
                    reads))
            sdk[key][FLOOR] = percentiles(timed(_floor(floor_client, ours, fraud_refs, rows, udf), reads))
            _say(f"SDK {key}: " + ", ".join(f"{n} {_cell(m)}" for n, m in sdk[key].items()) + " ms (p50 / p99)")
        seed_rows = [{"card_id": pairs[0]["card_id"]}]
        for name, store in stores.items():
            sdk.setdefault("seed_features_1", {})[name] = percentiles(timed(
                lambda s=store: s.get_online_features(features=SEED_FEATURES, entity_rows=seed_rows).to_dict(), reads))
        sdk["seed_features_1"][FLOOR] = percentiles(timed(_floor(floor_client, ours, seed_refs, seed_rows), reads))
        _say("SDK seed_features_1: " + ", ".join(f"{n} {_cell(m)}" for n, m in sdk["seed_features_1"].items()) + " ms")
        results["sdk"] = sdk
        rows = entity_rows(min(100, len(pairs)))
        answers = {name: store.get_online_features(features=services[name], entity_rows=rows).to_dict()
                   for name, store in stores.items()}
        answers[FLOOR] = _floor(floor_client, ours, fraud_refs, rows, udf)()
        results["answers"] = _compare(answers)
        _say(f"same answers: {json.dumps(results['answers'])}")

        # -------- HTTP
        row = entity_rows(1)[0]
        bodies = {
            "fraud_detection": json.dumps({"feature_service": "fraud_detection",
                                           "entities": {k: [row[k]] for k in ("card_id", "device_id", *REQUEST_FIELDS)}}).encode(),
            "seed_features": json.dumps({"features": SEED_FEATURES, "entities": {"card_id": [row["card_id"]]}}).encode(),
        }
        results["bodies"] = {k: json.loads(v) for k, v in bodies.items()}
        results["http"] = {}
        for name in SETUPS:
            server = Server(name, [*SERVE_COMMANDS[name], "--port", str(free_port())], paths[name], redis_of[name].connection_string,
                            tmp / f"{name.replace(' ', '_')}-server.log")
            _say(f"{name}: starting {_shown(server.args)}")
            reason = server.start()
            measured = results["http"][name] = {"available": reason is None, "command": _shown(server.args)}
            if reason is not None:
                _say(f"{name}: server not available: {reason}")
                measured["reason"] = reason
                continue
            try:
                _measure_server(measured, server, bodies, reads, duration, generator, tmp,
                                long_requests if name == "this repo" else 0)
            except Exception as exc:  # a server that dies half way (or wrk failing): report it, go on
                tail = server.log.read_text(errors="replace").strip().splitlines()[-3:]
                measured["error"] = f"{exc}: " + " | ".join(tail)[-400:]
                _say(f"{name}: measurement stopped: {measured['error']}")
            finally:
                server.stop()
        if not long_requests:
            results["long_run_note"] = "skipped (--long-requests 0)"
        elif not results["http"]["this repo"].get("available"):
            results["long_run_note"] = "not available (this repo's server did not start)"
    os.chdir(ROOT)

    http_ = results["http"]

    def serial(name: str, what: str, q: str = "p50_ms", kind: str = "serial") -> float | None:
        s = http_.get(name, {}).get(kind, {}).get(what)
        return s[q] if s else None

    def c32(name: str, body: str) -> dict | None:
        return http_.get(name, {}).get("load", {}).get(body, {}).get("32")

    results["ratios"] = {
        "sdk_fraud_1_over_floor": {s: _ratio(sdk["fraud_detection_1"][s]["p50_ms"], sdk["fraud_detection_1"][FLOOR]["p50_ms"])
                                   for s in SETUPS},
        "sdk_fraud_100_over_floor": {s: _ratio(sdk["fraud_detection_100"][s]["p50_ms"],
                                               sdk["fraud_detection_100"][FLOOR]["p50_ms"]) for s in SETUPS},
        "http_fraud_over_health": {s: _ratio(serial(s, "fraud_detection"), serial(s, "health")) for s in SETUPS},
        "http_fraud_over_health_lean": {s: _ratio(serial(s, "fraud_detection", kind="serial_lean"),
                                                  serial(s, "health", kind="serial_lean")) for s in SETUPS},
        "http_p99_over_p50": {s: _ratio(serial(s, "fraud_detection", "p99_ms"), serial(s, "fraud_detection"))
                              for s in SETUPS},
        "http_p99_over_p50_c32": {s: _ratio((c32(s, "fraud_detection") or {}).get("p99_ms"),
                                            (c32(s, "fraud_detection") or {}).get("p50_ms")) for s in SETUPS},
        **{f"throughput_c32_{body}": _ratio((c32("this repo", body) or {}).get("requests_per_s"),
                                            (c32("Feast stock", body) or {}).get("requests_per_s"))
           for body in ("fraud_detection", "seed_features")},
    }
    out.mkdir(parents=True, exist_ok=True)
    _plot(results, out / "serving.png")
    save(out, "serving", results, _table(results))
    _say(f"wrote {out / 'serving.json'}, serving.md and serving.png")


if __name__ == "__main__":
    main()
