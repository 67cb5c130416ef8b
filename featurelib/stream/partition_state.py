"""The events a partition's window state is rebuilt from, at start or when a processor takes it over.

A partition of family (stream, join key) computes only its own entities' rows, so it loads only
their events (``Lane.owns``: the partition hash of the join key), from

* every raw file of the stream that no partitioned processor of this partition count landed
  (generated history, an unpartitioned processor's landings, another partition count's), and
* the partition's own directory: what it landed for the batch job (the stream's first family),
  or its state copy (the other families, under ``data/stream_state/``).

Other partitions' landings are left out: their events belong to other entities of the first
family, and were not necessarily processed yet by this partition's family.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from featurelib import paths
from featurelib.raw_events import SCHEMAS
from featurelib.raw_reader import RawEvents
from featurelib.stream.partitions import Lane, is_partitioned_landing


def _under(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
        return True
    except ValueError:
        return False


def lane_sources(raw: RawEvents, lane: Lane, repo: Path) -> RawEvents:
    """The raw files ``lane`` rebuilds from (see the module docstring), with the invalid rows that
    ``raw`` (a scan of ``data/raw/<stream>``) found in them left out as the batch job does."""
    raw_dir, own = paths.raw_dir(repo), lane.landed_dir(repo)
    files = [f for f in raw.files if _under(f, own) or not is_partitioned_landing(f, raw_dir, lane.kind, lane.count)]
    if not lane.lands and own.is_dir():  # written by this family's processors: valid by construction
        files += sorted(p for p in own.rglob("*.parquet") if not p.name.startswith("."))
    invalid = raw.invalid
    if invalid.num_rows:
        kept = pa.array(sorted({f.as_posix() for f in files}), pa.string())
        invalid = invalid.filter(pc.is_in(invalid.column("filename"), value_set=kept))
    return RawEvents(lane.kind, sorted(files), invalid)


def lane_events(raw: RawEvents, lane: Lane, repo: Path, margin_us: int) -> tuple[pa.Table, int]:
    """The events of ``lane``'s entities to rebuild its state from, and its clock: the newest
    event of its sources (the partition restarts where it stopped, as an unpartitioned processor
    restarts at its stream's newest landed event). Events more than ``margin_us`` older are left
    out: they can no longer change a row it may write."""
    sources = lane_sources(raw, lane, repo)
    if not sources.files:
        return SCHEMAS[lane.kind].empty_table(), 0
    clock = sources.newest_us()
    table = sources.after(clock - margin_us)
    return table.filter(pa.array(lane.owns(table))), clock
