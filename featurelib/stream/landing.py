"""Landing consumed events as Parquet, micro-batched, before they are acknowledged.

Accepted events go to ``data/raw/<stream>/stream/<date>/part-<first id>_<last id>.parquet``
beside the generated events, so the batch job covers them and training sees the values
that were served. Too-late and malformed events go to ``data/quarantine/<stream>/``,
which the batch job does not read. A partition is written once (temporary name, then
rename) under a name no other flush uses; events delivered again after a crash land again
in another partition and the batch job counts each event id once. A partitioned processor
(``featurelib.stream.partitioned``) places each partition's files in directories of its own
(``place``).
"""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from featurelib.parquet_files import write_table
from featurelib.raw_events import SCHEMAS
from featurelib.stream.events import conform
from featurelib.stream.table_log import TableLog


@dataclass(frozen=True)
class Place:
    """Where the events read from one stream go: their kind, the directory of the accepted ones
    (``<day>/part-*.parquet`` below it) and that of the quarantined ones."""

    kind: str
    landed: Path
    quarantine: Path


@dataclass
class _Pending:
    accepted: TableLog = field(default_factory=TableLog)  # one small table per step, merged as they come
    quarantine: dict[str, list[pa.Table]] = field(default_factory=dict)
    ids: list[bytes] = field(default_factory=list)


class Landing:
    def __init__(self, raw_dir: Path, quarantine_dir: Path, flush_rows: int = 100_000, flush_seconds: float = 2.0,
                 place: Callable[[str], Place] | None = None):
        """``place``: where the events of each stream go (default: stream ``kind`` to
        ``raw_dir/<kind>/stream`` and ``quarantine_dir/<kind>``)."""
        self.raw_dir, self.quarantine_dir = raw_dir, quarantine_dir
        self.place = functools.cache(place or (lambda kind: Place(kind, raw_dir / kind / "stream", quarantine_dir / kind)))
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.pending: dict[str, _Pending] = {}
        self.last_flush = time.monotonic()
        self.files = 0

    def add(self, kind: str, ids: list[bytes], accepted: pa.Table | None = None,
            quarantine: dict[str, pa.Table] | None = None) -> None:
        """Remember events to land and the stream ids to acknowledge once they are on disk."""
        p = self.pending.setdefault(kind, _Pending())
        if accepted is not None and accepted.num_rows:
            p.accepted.append(conform(accepted, SCHEMAS[self.place(kind).kind]))
        for reason, table in (quarantine or {}).items():
            if table.num_rows:
                p.quarantine.setdefault(reason, []).append(table)
        p.ids.extend(ids)

    def last_landed_id(self, kind: str) -> tuple[int, int] | None:
        """The highest entry id of ``kind``'s stream landed or quarantined so far (see ``last_landed_id``)."""
        place = self.place(kind)
        return last_landed_id(place.landed, place.quarantine)

    def due(self) -> bool:
        rows = sum(p.accepted.rows for p in self.pending.values())
        waiting = any(p.ids for p in self.pending.values())
        return rows >= self.flush_rows or (waiting and time.monotonic() - self.last_flush >= self.flush_seconds)

    def take(self) -> dict[str, _Pending]:
        """Hand over everything pending (for ``write``, which may run on another thread)."""
        pending, self.pending = self.pending, {}
        self.last_flush = time.monotonic()
        return pending

    def write(self, pending: dict[str, _Pending]) -> dict[str, list[bytes]]:
        """Write the partitions of ``pending``; return the stream ids that may now be acknowledged."""
        done = {}
        for kind, p in pending.items():
            if not p.ids:
                continue
            # Unique even if the same id range lands again after a crash (never replace a file).
            name = f"{_safe(p.ids[0])}_{_safe(p.ids[-1])}_{uuid.uuid4().hex[:8]}.parquet"
            day = datetime.fromtimestamp(int(p.ids[0].split(b"-")[0]) / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
            place = self.place(kind)
            if p.accepted:
                write_table(p.accepted.table(), place.landed / day / f"part-{name}")
                self.files += 1
            for reason, tables in p.quarantine.items():
                write_table(pa.concat_tables(tables), place.quarantine / day / f"{reason}-{name}")
                self.files += 1
            done[kind] = p.ids
        return done


_NAME = re.compile(r"(\d+)-(\d+)_(\d+)-(\d+)_[0-9a-f]{8}\.parquet$")


def last_landed_id(*directories: Path) -> tuple[int, int] | None:
    """The highest stream entry id whose event was landed or quarantined under ``directories``
    (from the partition names, ``<directory>/<day>/..._<first id>_<last id>_<nonce>.parquet``), as
    (ms, seq). Deeper files are another stream's: a partitioned processor's, under ``<directory>/<partition>/``."""
    best = None
    for directory in directories:
        for path in directory.glob("*/*.parquet") if directory.is_dir() else ():
            match = _NAME.search(path.name)
            if match:
                last = (int(match.group(3)), int(match.group(4)))
                best = last if best is None or last > best else best
    return best


def _safe(stream_id: bytes) -> str:
    return stream_id.decode()
