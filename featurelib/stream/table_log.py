"""Small Arrow tables appended one at a time, kept as a few chunks at a bounded cost per append.

A live processor appends one small table per step (a few events) to what it will land and
to what its buffer will index. Kept as they are, a flush or a read pays for thousands of
tiny chunks (landing two seconds of steps, about 600 chunks per stream, took 25-55 ms on the
landing thread, slowing the steps beside it; 2-4 ms as a few chunks); merged all at once every
N appends, one step in N stalls for milliseconds (5-9 ms for 512). ``TableLog``
merges like a binary counter in base ``fanout``: every ``fanout`` tables of one size class
become one table of the next, so an append merges at most ``fanout`` tables per class (tens
of microseconds for the live steps' tables), every row is copied a logarithmic number of
times, and at most ``fanout - 1`` chunks per class remain.
"""

from __future__ import annotations

import pyarrow as pa

FANOUT = 16


class TableLog:
    """Tables of one schema, in the order appended."""

    def __init__(self, fanout: int = FANOUT):
        self.fanout = fanout
        self._parts: list[tuple[int, pa.Table]] = []  # (size class, table); classes never increase along the list
        self.rows = 0

    def append(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._parts.append((0, table))
        self.rows += table.num_rows
        f = self.fanout
        while len(self._parts) >= f and self._parts[-f][0] == self._parts[-1][0]:
            level = self._parts[-1][0]
            merged = pa.concat_tables([t for _, t in self._parts[-f:]]).combine_chunks()
            del self._parts[-f:]
            self._parts.append((level + 1, merged))

    @property
    def tables(self) -> list[pa.Table]:
        return [t for _, t in self._parts]

    def table(self) -> pa.Table | None:
        """Everything appended, as one table of few chunks (None when nothing was)."""
        if not self._parts:
            return None
        return self._parts[0][1] if len(self._parts) == 1 else pa.concat_tables(self.tables)

    def __len__(self) -> int:
        return self.rows

    def __bool__(self) -> bool:
        return bool(self._parts)
