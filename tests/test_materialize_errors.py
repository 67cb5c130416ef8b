"""``feast materialize`` on an offline Parquet file that does not read: one line naming the file
and the cause, exit code 2, no traceback (``featurelib.materialization``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurelib.errors import UnreadableFileError
from featurelib.redis_server import RedisServer
from tests.conftest import TINY, Repo, copy_repo, make_repo, run, set_project

VIEW = "transaction_stats_5m"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Repo:
    """Applied, not materialized: these tests only need the offline files and the registry."""
    path = tmp_path_factory.mktemp("materr")
    copy_repo(path)
    set_project(path, f"materr_{path.name.replace('-', '_')}")
    return make_repo(path, TINY, materialize=False)


@contextmanager
def damaged(file: Path, damage) -> Iterator[Path]:
    """``file`` with ``damage(bytes) -> bytes`` applied, restored afterwards."""
    original = file.read_bytes()
    file.write_bytes(damage(original))
    try:
        yield file
    finally:
        file.write_bytes(original)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupt_first_page(data: bytes) -> bytes:
    """Overwrite 64 bytes inside the first data page; the footer stays intact, so the file opens."""
    return data[:50] + b"\xff" * 64 + data[114:]


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize("command", ["materialize", "materialize-incremental"])
def test_feast_materialize_on_a_truncated_parquet_file_prints_one_line_and_exits_2(repo: Repo, command: str) -> None:
    now = datetime.now(timezone.utc)
    args = [_stamp(now - timedelta(days=3)), _stamp(now)] if command == "materialize" else [_stamp(now)]
    with damaged(repo.path / "data" / "features" / f"{VIEW}.parquet", truncated) as file:
        result = run(["feast", command, *args], repo.path, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot read the Parquet file {file}: "), line
    assert "magic bytes" in line  # the cause, as pyarrow states it


def test_a_corrupt_page_behind_an_intact_footer_is_reported_by_name(repo: Repo) -> None:
    """DuckDB fails while reading; the engine reads the file through with pyarrow to name it."""
    store = repo.store()
    now = datetime.now(timezone.utc)
    file = repo.path / "data" / "features" / f"{VIEW}.parquet"
    with damaged(file, corrupt_first_page), pytest.raises(UnreadableFileError) as error:
        store.materialize(now - timedelta(days=3), now, feature_views=[VIEW])
    assert error.value.path == file
    assert str(error.value).startswith(f"cannot read the Parquet file {file}: ")
    assert len(str(error.value).splitlines()) == 1
