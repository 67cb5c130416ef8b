"""Online coverage: are the keys the offline store implies online? (``validate``'s check, and
what ``restore-online`` repairs.) Per view, a deterministic uniform sample of the entities whose
latest offline row is within the view's ttl, looked up with one pipelined ``EXISTS``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from feast import FeatureStore, FeatureView

from featurelib import contract, duck
from featurelib.feature_data import existing_offline_path, offline_path
from featurelib.repo import redis_client
from featurelib.report import FAIL, OK, WARN, Check
from featurelib.timeutil import format_us, now_us

RESTORE_COMMAND = "python feature_utils.py restore-online"
"""What rebuilds an online store that lost keys (``featurelib.restore``)."""

COVERAGE_SAMPLE = 1000
"""Entities per feature view whose keys the coverage check looks up."""
COVERAGE_FAIL_BELOW = 0.99
"""Share of sampled keys present online under which the coverage check fails (below 1: warns)."""


@dataclass
class Coverage:
    """How many of a view's expected online keys exist, from a sample.

    ``population``: entities whose latest offline row at or before the check's instant is
    at most the view's ttl old (all with a row, for a view without ttl): each should have a
    hash online. ``sampled`` of them were looked up, ``present`` exist."""

    view: str
    population: int
    sampled: int
    present: int
    seconds: float

    @property
    def share(self) -> float:
        """Share of sampled keys present, 0 to 1 (1 when nothing was sampled)."""
        return self.present / self.sampled if self.sampled else 1.0

    @property
    def estimated_missing(self) -> int:
        """Missing keys over the whole population, extrapolated from the sample."""
        return round(self.population * (self.sampled - self.present) / self.sampled) if self.sampled else 0

    def to_dict(self) -> dict[str, Any]:
        return {"population": self.population, "sampled": self.sampled, "present": self.present,
                "missing": self.sampled - self.present, "share": round(self.share, 6),
                "estimated_missing": self.estimated_missing, "seconds": round(self.seconds, 3)}


def coverage_status(present: int, sampled: int) -> str:
    """``fail`` below 99 % of the sampled keys present, ``warn`` below 100 %, else ``ok``."""
    if present >= sampled:
        return OK
    return FAIL if present < COVERAGE_FAIL_BELOW * sampled else WARN


def expected_online(store: FeatureStore, view: FeatureView, n: int, at_us: int) -> tuple[list[tuple], int]:
    """A deterministic uniform sample of up to ``n`` entities that should have a hash online at
    ``at_us`` (µs since the epoch), as tuples of join key values, and the size of their population.

    The population is every entity whose latest offline row at or before ``at_us`` is at most
    the view's ttl old: what a materialization up to ``at_us`` writes and the hash's TTL keeps.
    Entities are ordered by a hash of their join keys, so the first ``n`` are a pseudo-random
    sample that is the same on every run over the same data."""
    keys = ", ".join(view.join_keys)
    ts = view.batch_source.timestamp_field
    ttl_us = int(view.ttl.total_seconds() * 1_000_000) if view.ttl else 0
    recent = f"HAVING max({ts}) >= TIMESTAMPTZ '{format_us(at_us - ttl_us)}'" if ttl_us else ""
    rows = duck.rows(
        f"WITH population AS (SELECT {keys} FROM {duck.parquet(existing_offline_path(store, view))} "
        f"WHERE {ts} <= TIMESTAMPTZ '{format_us(at_us)}' GROUP BY {keys} {recent}) "
        f"SELECT {keys}, count(*) OVER () FROM population ORDER BY hash({keys}), {keys} LIMIT {int(n)}")
    return [r[:-1] for r in rows], (rows[0][-1] if rows else 0)


def keys_present(client: Any, keys: list[str]) -> int:
    """How many of ``keys`` exist in Redis: one pipelined round trip of ``EXISTS``."""
    if not keys:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in keys:  # one key per command: keys may live in different cluster slots
        pipe.exists(key)
    return sum(pipe.execute())


def view_coverage(store: FeatureStore, view: FeatureView, client: Any, prefix: str, sample: int, at_us: int) -> Coverage:
    """``Coverage`` of one view: sample its expected entities and look their keys up."""
    started = time.perf_counter()
    entities, population = expected_online(store, view, sample, at_us)
    keys = [contract.hash_key(prefix, view.join_keys, values, view.name) for values in entities]
    present = keys_present(client, keys)
    return Coverage(view.name, population, len(keys), present, time.perf_counter() - started)


def _coverage_summary(covs: list[Coverage], status: str) -> str:
    sampled, present = sum(c.sampled for c in covs), sum(c.present for c in covs)
    population, estimated = sum(c.population for c in covs), sum(c.estimated_missing for c in covs)
    if status == OK:
        return f"all {sampled:,} sampled keys present ({population:,} entities within ttl in {len(covs)} views)"
    bad = [c.view for c in covs if coverage_status(c.present, c.sampled) == status]
    text = (f"{sampled - present:,} of {sampled:,} sampled keys missing, about {estimated:,} of {population:,} "
            f"in all (below {'99' if status == FAIL else '100'} %: {', '.join(bad)})")
    return f"{text}: run `{RESTORE_COMMAND}`" if status == FAIL else f"{text}; `{RESTORE_COMMAND}` restores them"


def check_coverage(store: FeatureStore, sample: int = COVERAGE_SAMPLE) -> Check:
    """Are the keys the offline store implies online? Per view, up to ``sample`` entities
    (``expected_online``) and one pipelined ``EXISTS`` round trip; fails below 99 %."""
    prefix = getattr(store.config.online_store, "key_prefix", None)
    if prefix is None:
        return Check("online coverage", WARN, f"online store {store.config.online_store.type} does not use the "
                     "stream contract's keys")
    client, at = redis_client(store), now_us()
    covs, details = [], []
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if not view.online or not offline_path(store, view).is_file():
            continue  # no keys expected (the offline sources check reports a missing file)
        cov = view_coverage(store, view, client, prefix, sample, at)
        covs.append(cov)
        details.append(f"{view.name:<22} {cov.present:,}/{cov.sampled:,} sampled keys present "
                       f"({cov.share:.1%}; {cov.population:,} entities within ttl, ~{cov.estimated_missing:,} missing)")
    status = max((coverage_status(c.present, c.sampled) for c in covs), key=[OK, WARN, FAIL].index, default=OK)
    return Check("online coverage", status, _coverage_summary(covs, status), details,
                 {"at": format_us(at), "views": {c.view: c.to_dict() for c in covs}})
