"""When Python's cyclic garbage collector runs while the processor consumes.

A large read allocates millions of small acyclic objects (entries, field lists, bytes), and a
read-ahead keeps the next batch's alive between steps; the collector, triggered by allocation
counts, would walk them again and again (it tripled the cost of turning a large read into
columns), and walking the whole window state took 53 ms. So while the loop runs the collector
is paused (``paused``), and ``Collector.tick`` runs it on a timer over the objects made since
its last run: what survives is frozen (never walked again), and every ``full_every_s`` all of it
is walked once more (reference cycles among frozen objects are freed then). Memory is freed by
reference counting as usual; only reference cycles wait for a collection (a live processor
makes none: a collection after a thousand live steps found nothing to free).

The cost of a collection is the objects it walks: a second of live steps at 1,000 events/s
leaves about 10,000 (2 ms), thirty seconds 90 ms in one stall; so a live processor collects
every ``every_s``. In a backlog a read of 200,000 entries, alive until its step is done, is
about half a million, so a busy processor collects every ``backlog_every_s`` instead.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Pause the cyclic collector (as it was before, afterwards)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Collector:
    """Timed collections: ``start`` once the start-up state is built, ``tick`` in the loop,
    ``stop`` at the end."""

    def __init__(self, every_s: float, full_every_s: float, backlog_every_s: float = 30.0):
        self.every_s, self.full_every_s, self.backlog_every_s = every_s, full_every_s, backlog_every_s
        self._last = self._last_full = time.monotonic()

    def start(self) -> None:
        """Collect, and freeze what exists now (modules, Feast's registry, the rebuilt state)."""
        gc.collect()
        gc.freeze()
        self._last = self._last_full = time.monotonic()

    def tick(self, backlog: bool = False) -> None:
        """Collect if due: ``every_s`` after the last collection, ``backlog_every_s`` while the
        processor works through a backlog."""
        if time.monotonic() - self._last < (self.backlog_every_s if backlog else self.every_s):
            return
        if time.monotonic() - self._last_full >= self.full_every_s:
            gc.unfreeze()
            self._last_full = time.monotonic()
        gc.collect()
        gc.freeze()
        self._last = time.monotonic()

    @staticmethod
    def stop() -> None:
        gc.unfreeze()
