"""Partitioned streams: the key grammar, the hash that routes an event, and where each partition's
events are kept.

One stream carries events of several entities (a transaction has a card and a device), and a
feature view's windows need *all* of its entity's events. So a stream is partitioned once per
join key its views use: a *family* ``(stream, join key)`` has ``N`` partition streams ::

    <stream key>:<join key>:<p>        p = 0 .. N-1, e.g. events:transactions:card_id:3

and an event goes to partition ``crc32(utf-8 bytes of its <join key> value) mod N`` of *every*
family of its stream (CRC-32 as in zlib, Java's ``java.util.zip.CRC32`` or Go's
``hash/crc32.ChecksumIEEE``; never a per-process randomized hash). A transaction is written twice
(by ``card_id`` and by ``device_id``), a click twice (by ``user_id`` and by ``session_id``). The
processor owning partition ``p`` of a family computes only that stream's views of that join key,
for the entities of that partition. ``N`` is stored beside the streams
(``<stream key>:partitions``): a producer or processor started with another ``N`` stops with a
one-line error.

**Landing.** The stream's *first* family (its first view's join key: ``card_id``,
``user_id``) lands the events it accepted for the batch job, under
``data/raw/<stream>/stream/<join key>-<p>-of-<N>/``: each event once. The other families keep
their own copy, for their restart only, under ``data/stream_state/<stream>/<join key>-<p>-of-<N>/``
(the batch job does not read it). A partition's state is rebuilt from the events of its own
entities: what was not landed by any partitioned processor of this ``N`` (generated history,
unpartitioned landings) plus its own directory.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis

from featurelib import paths
from featurelib import semantics as s
from featurelib.errors import OperationalError

PARTITION_DIR = re.compile(r"^(?P<key>\w+)-(?P<p>\d+)-of-(?P<n>\d+)$")
"""The directory of one partition's events: ``<join key>-<p>-of-<N>``."""


def family_keys(kind: str) -> list[str]:
    """The join keys of ``kind``'s feature views, in the order the views are declared; the first
    one's family lands the events for the batch job."""
    keys: list[str] = []
    for view in s.VIEWS.values():
        if view.events == kind and view.join_key not in keys:
            keys.append(view.join_key)
    return keys


def partition_of(entity: str | None, count: int) -> int:
    """The partition of an entity id: CRC-32 of its UTF-8 bytes, modulo ``count`` (a missing id
    counts as the empty string)."""
    return zlib.crc32((entity or "").encode()) % count


def partitions_of(ids: pa.Array | pa.ChunkedArray, count: int) -> np.ndarray:
    """``partition_of`` of every value of a string column (one CRC per distinct value)."""
    column = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if len(column) == 0:
        return np.empty(0, np.int64)
    encoded = pc.dictionary_encode(column.cast(pa.string()))
    of_value = np.array([partition_of(v, count) for v in encoded.dictionary.to_pylist()], np.int64)
    indices = encoded.indices.fill_null(len(of_value))  # nulls: the empty string's partition
    return np.append(of_value, partition_of(None, count))[np.asarray(indices, np.int64)]


def partition_stream(base: str, key: str, partition: int) -> str:
    """The stream key of partition ``partition`` of family (``base``, ``key``)."""
    return f"{base}:{key}:{partition}"


def count_key(base: str) -> str:
    """Where the partition count of stream ``base`` is kept."""
    return f"{base}:partitions"


def routes(base: str, kind: str, fields: dict[str, str], count: int) -> list[str]:
    """The partition streams a producer XADDs an event (its stream fields) to: one per family."""
    return [partition_stream(base, key, partition_of(fields.get(key), count)) for key in family_keys(kind)]


@dataclass(frozen=True)
class Lane:
    """One partition stream, as a processor consumes it."""

    kind: str
    key: str
    partition: int
    count: int
    stream: str

    @property
    def family(self) -> tuple[str, str]:
        return self.kind, self.key

    @property
    def lands(self) -> bool:
        """True when this family lands its events for the batch job (the stream's first)."""
        return family_keys(self.kind)[0] == self.key

    @property
    def directory(self) -> str:
        return f"{self.key}-{self.partition}-of-{self.count}"

    def landed_dir(self, repo: Path) -> Path:
        """Where this partition's accepted events are landed (for the batch job, or its own restart)."""
        if self.lands:
            return paths.raw_dir(repo) / self.kind / "stream" / self.directory
        return state_dir(repo) / self.kind / self.directory / "events"

    def quarantine_dir(self, repo: Path) -> Path:
        if self.lands:
            return paths.data_dir(repo) / "quarantine" / self.kind / self.directory
        return state_dir(repo) / self.kind / self.directory / "quarantine"

    def owns(self, table: pa.Table) -> np.ndarray:
        """True for the events of ``table`` that belong to this partition."""
        return partitions_of(table.column(self.key), self.count) == self.partition


def state_dir(repo: Path) -> Path:
    """The state copies of the families that do not land for the batch job."""
    return paths.data_dir(repo) / "stream_state"


def lanes(streams: dict[str, str], count: int) -> list[Lane]:
    """Every partition of every family of ``streams`` (kind -> stream key), family by family."""
    return [Lane(kind, key, p, count, partition_stream(base, key, p))
            for kind, base in streams.items() for key in family_keys(kind) for p in range(count)]


def is_partitioned_landing(path: Path, raw_dir: Path, kind: str, count: int) -> bool:
    """True for a file landed by a partitioned processor of ``count`` partitions."""
    try:
        parts = path.relative_to(raw_dir / kind).parts
    except ValueError:
        return False
    match = PARTITION_DIR.match(parts[1]) if len(parts) > 2 and parts[0] == "stream" else None
    return match is not None and int(match["n"]) == count


def check_count(client: redis.Redis, bases: list[str], count: int) -> None:
    """Record ``count`` as the partition count of each stream, or raise ``OperationalError`` (one
    line) when another count is recorded: producers and processors must agree."""
    for base in bases:
        key = count_key(base)
        client.set(key, count, nx=True)
        recorded = client.get(key)
        if recorded is not None and int(recorded) != count:
            raise OperationalError(
                f"{base} is split into {int(recorded)} partitions ({key}), not {count}: run every producer and "
                f"processor with --partitions {int(recorded)} (to change it, drain the streams and delete {key})")
