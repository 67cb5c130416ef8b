"""Rebuild the online store from the raw events: the library behind ``feature_utils.py restore-online``.

A Redis restarted without persistence comes back empty, and ``feast materialize-incremental``
then loads only the rows that changed since its last run: a few entities. ``restore_online``
puts back every key instead:

1. recompute every feature view's offline file from the repository's raw events
   (``featurelib.batch.build_all`` over ``data/raw``; skipped with ``build=False`` when the
   files are current);
2. materialize every feature view from its earliest offline row to now through Feast
   (``FeatureStore.materialize``), so the configured engine and the online store's write
   script are used: the latest row of every entity is written unless the stored row is
   newer (a stream may have written it), and rows whose hash would already have expired are
   skipped, exactly as a fresh ``feast materialize`` of the whole history does;
3. count each view's keys before and after (a ``SCAN`` of the view's key pattern).

Idempotent: running it on a complete store rewrites equal rows and changes nothing.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from feast import FeatureStore, FeatureView

from featurelib import contract, duck, paths
from featurelib.feature_data import existing_offline_path, offline_path
from featurelib.repo import UserError, quiet, redis_client, require_redis
from featurelib.report import Report
from featurelib.timeutil import format_us, from_us, now_us, to_us

Progress = Callable[[str], None]


@dataclass
class ViewRestore:
    """What ``restore_online`` did for one feature view (times in seconds, instants ISO-8601 UTC)."""

    view: str
    keys_before: int
    keys_after: int
    build_seconds: float | None  # None: the offline file was not rebuilt
    materialize_seconds: float
    start: str | None  # the earliest offline row materialized; None: the file has no rows

    @property
    def seconds(self) -> float:
        return (self.build_seconds or 0.0) + self.materialize_seconds


@dataclass
class RestoreReport(Report):
    repo: str
    end: str  # rows up to this instant were materialized
    built: bool
    views: list[ViewRestore] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return True  # a failure raises instead

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "ok": self.ok, "end": self.end, "built": self.built, "seconds": round(self.seconds, 3),
                "keys_before": sum(v.keys_before for v in self.views),
                "keys_after": sum(v.keys_after for v in self.views),
                "views": [asdict(v) | {"seconds": round(v.seconds, 3)} for v in self.views]}

    def render(self) -> str:
        source = "rebuilt from data/raw" if self.built else "offline files as they were"
        lines = [f"Online store restored: {self.repo} ({source}), rows up to {self.end}",
                 f"  {'view':<22} {'keys before':>12} {'keys after':>12} {'seconds':>8}"]
        lines += [f"  {v.view:<22} {v.keys_before:>12,} {v.keys_after:>12,} {v.seconds:>8.2f}" for v in self.views]
        before, after = sum(v.keys_before for v in self.views), sum(v.keys_after for v in self.views)
        lines.append(f"Result: OK ({before:,} keys before, {after:,} after, in {self.seconds:.1f}s)")
        return "\n".join(lines)


def key_prefix(store: FeatureStore) -> str:
    """The online store's key prefix, or a ``UserError`` when it does not use the stream contract."""
    prefix = getattr(store.config.online_store, "key_prefix", None)
    if prefix is None:
        raise UserError(f"restore-online counts the stream contract's keys; online store "
                        f"{store.config.online_store.type} does not use them")
    return prefix


def count_keys(client: Any, prefix: str, view: str, batch: int = 1000) -> int:
    """Number of hashes of ``view`` under ``prefix``: a ``SCAN`` of its key pattern, each key
    confirmed by the key grammar (a longer prefix may match the pattern), each counted once."""
    return len(set(contract.view_keys(client, prefix, view, batch)))


def online_views(store: FeatureStore) -> list[FeatureView]:
    """The registered feature views that are served online, sorted by name."""
    return sorted((v for v in store.list_feature_views() if v.online), key=lambda v: v.name)


def build_offline(store: FeatureStore, views: list[FeatureView], progress: Progress) -> dict[str, float]:
    """Recompute the offline files of ``views`` from ``data/raw`` (``featurelib.batch.build_all``;
    invalid raw events are left out and listed under ``data/quarantine``, as the batch job's CLI
    does). Returns the seconds each view took. ``UserError`` when a view reads another file than the
    batch job writes, or when raw events are missing."""
    from featurelib import semantics
    from featurelib.batch import build_all

    repo = Path(store.repo_path)
    names = [v.name for v in views if v.name in semantics.VIEWS]
    for view in views:
        if view.name in names and offline_path(store, view) != paths.feature_file(view.name, repo):
            raise UserError(f"{view.name} reads {offline_path(store, view)}, not the batch job's "
                            f"{paths.feature_file(view.name, repo)}: build it yourself, then use --skip-build")
    progress(f"recomputing {len(names)} offline feature files from {paths.raw_dir(repo)}")
    try:
        builds = build_all(paths.raw_dir(repo), paths.features_dir(repo), names, progress=progress,
                           quarantine_dir=paths.data_dir(repo) / "quarantine")  # as `python -m featurelib.batch`
    except FileNotFoundError as exc:
        raise UserError(f"{exc}: generate or land raw events first, or use --skip-build") from None
    return {b.view: b.seconds for b in builds}


def earliest_row(store: FeatureStore, view: FeatureView) -> datetime | None:
    """The event time of the view's earliest offline row (None: the file has no rows)."""
    ts = view.batch_source.timestamp_field
    (first,) = duck.one(f"SELECT epoch_us(min({ts})) FROM {duck.parquet(existing_offline_path(store, view))}")
    return None if first is None else from_us(first)


def materialize_view(store: FeatureStore, view: FeatureView, start: datetime, end: datetime) -> float:
    """``FeatureStore.materialize`` of one view over ``[start, end]``, quietly; its seconds."""
    import redis

    started = time.perf_counter()
    try:
        with quiet(), contextlib.redirect_stderr(io.StringIO()):  # Feast's progress bars
            store.materialize(start, end, feature_views=[view.name])
    except redis.RedisError as exc:
        raise UserError(f"materializing {view.name} failed: {str(exc).splitlines()[0]}") from None
    return time.perf_counter() - started


def restore_online(store: FeatureStore, *, build: bool = True, progress: Progress | None = None,
                   end_us: int | None = None) -> RestoreReport:
    """Put every key a materialization of the whole history up to ``end_us`` (µs since the
    epoch, default now) would write back into the online store; see the module docstring.

    ``progress`` gets a line per step. Raises ``UserError`` (one line for the CLI) when Redis
    does not answer, raw events or offline files are missing, or a write fails."""
    say = progress or (lambda _line: None)
    started = time.perf_counter()
    require_redis(store)
    prefix, client = key_prefix(store), redis_client(store)
    views = online_views(store)
    before = {v.name: count_keys(client, prefix, v.name) for v in views}
    say("keys before: " + ", ".join(f"{name} {n:,}" for name, n in before.items()))
    built = build_offline(store, views, say) if build else {}
    end_at = end_us if end_us is not None else now_us()
    end = from_us(end_at)
    report = RestoreReport(str(store.repo_path), format_us(end_at), build)
    for view in views:
        start = earliest_row(store, view)
        seconds = 0.0
        if start is not None and start <= end:
            say(f"{view.name}: materializing {start:%Y-%m-%d %H:%M:%S} .. {end:%Y-%m-%d %H:%M:%S} UTC")
            seconds = materialize_view(store, view, start, end)
        after = count_keys(client, prefix, view.name)
        say(f"{view.name}: {before[view.name]:,} -> {after:,} keys ({seconds:.1f}s)")
        report.views.append(ViewRestore(view.name, before[view.name], after, built.get(view.name), seconds,
                                        format_us(to_us(start)) if start else None))
    report.seconds = time.perf_counter() - started
    return report
