"""Health checks of a feature repository: the library behind ``feature_utils.py validate``.

``validate(repo)`` runs seven checks and returns a ``Report``:

1. **registry**: the file registry loads; what it holds and when it was last updated.
2. **redis**: the online store answers ``PING``; round-trip time and server version.
3. **definitions**: the objects defined in the repository's Python files are exactly
   the registered ones (Feast's own ``plan`` computes the difference).
4. **offline sources**: every feature view's Parquet file is readable and has the
   join keys, ``event_timestamp`` and every feature with the declared type.
5. **online data**: for the entities most recently active offline, the online store
   holds values of every feature view; how old they are.
6. **online coverage**: a uniform sample of the entities whose latest offline row lies
   within the view's ttl have a hash online; an estimate of the missing keys (a Redis
   restarted empty fails here, while the most recent entities may look fine).
7. **stream contract**: sampled Redis hashes of every view parse against its schema
   (``docs/STREAM_CONTRACT.md``); no hashes of unregistered views, none without TTL.

A check ends ``ok``, ``warn`` or ``fail``; the report fails when any check fails.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView
from feast.diff.property_diff import TransitionType
from feast.repo_contents import RepoContents
from feast.type_map import feast_value_type_to_pa

from featurelib import contract, duck, report
from featurelib.coverage import RESTORE_COMMAND, check_coverage
from featurelib.feature_data import offline_path, online_values, recent_entities
from featurelib.repo import quiet, redis_address, redis_client, registry_file, require_redis
from featurelib.report import FAIL, MARK, OK, WARN, Check
from featurelib.timeutil import format_age, format_us, now_us, to_us

GENERATE_COMMANDS = "`python -m featurelib.generate` then `python -m featurelib.batch`"
"""What makes feature data on a repository that has none (besides ``make demo``)."""
@dataclass
class Report(report.Report):
    repo: str
    project: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def render(self) -> str:
        lines = [f"Feature store validation: {self.repo} (project {self.project})"]
        for c in self.checks:
            lines.append(f"  {MARK[c.status]} {c.name:<16} {c.summary}")
            lines += [f"       {d}" for d in c.details]
        failures = sum(c.status == FAIL for c in self.checks)
        warnings = sum(c.status == WARN for c in self.checks)
        lines.append(f"Result: {'OK' if self.ok else 'FAILED'} ({failures} failed, {warnings} warnings)")
        return "\n".join(lines)


def _guard(name: str, fn: Callable[[], Check]) -> Check:
    """Run a check; an exception becomes a failed check with its message."""
    try:
        return fn()
    except Exception as exc:  # a check must report, not crash the report
        return Check(name, FAIL, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def check_registry(store: FeatureStore) -> Check:
    path = registry_file(store)
    if not path.is_file():
        return Check("registry", FAIL, f"{path} not found: run `feast apply`")
    with quiet():
        proto = store.registry.proto()
    counts = {
        "entities": len(store.list_entities()), "feature_views": len(store.list_feature_views()),
        "on_demand_feature_views": len(store.list_on_demand_feature_views()),
        "feature_services": len(store.list_feature_services()), "data_sources": len(store.list_data_sources()),
    }
    updated = proto.last_updated.ToDatetime(tzinfo=timezone.utc) if proto.HasField("last_updated") else None
    summary = (f"{path.name}: {counts['entities']} entities, {counts['feature_views']} feature views, "
               f"{counts['on_demand_feature_views']} on-demand views, {counts['feature_services']} services")
    if updated:
        summary += f" (updated {updated:%Y-%m-%d %H:%M:%S} UTC)"
    return Check("registry", OK, summary, data={**counts, "path": str(path),
                                                 "updated": updated.isoformat() if updated else None})


def check_redis(store: FeatureStore, pings: int = 5) -> Check:
    require_redis(store)
    client = redis_client(store)
    rtts = []
    for _ in range(pings):
        started = time.perf_counter()
        client.ping()
        rtts.append((time.perf_counter() - started) * 1000)
    version = client.info("server").get("redis_version", "?")
    rtt = statistics.median(rtts)
    where = redis_address(store)
    return Check("redis", OK, f"{where} answers PING in {rtt:.2f} ms (median of {pings}; Redis {version})",
                 data={"address": where, "rtt_ms": round(rtt, 3), "version": version})


@contextlib.contextmanager
def _inside_repo(repo: Path) -> Iterator[None]:
    """Feast imports definition files by their path relative to the working directory. Modules
    of the same names imported from elsewhere (another repository's ``data_sources``) are set
    aside meanwhile, so this repository's own files are the ones imported."""
    cwd, path = os.getcwd(), list(sys.path)
    shadowed = {p.stem: sys.modules.pop(p.stem) for p in repo.glob("*.py")
                if p.stem in sys.modules and str(repo) not in str(getattr(sys.modules[p.stem], "__file__", ""))}
    before = set(sys.modules)
    os.chdir(repo)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        os.chdir(cwd)
        sys.path[:] = path
        # Forget definition modules imported here: another repo may define the same names.
        for name in set(sys.modules) - before:
            if getattr(sys.modules[name], "__file__", "") and str(repo) in str(sys.modules[name].__file__):
                del sys.modules[name]
        sys.modules.update(shadowed)


def code_definitions(repo: Path) -> RepoContents:
    """What ``feast apply`` would register from the repository's Python files."""
    from feast.repo_operations import parse_repo

    with _inside_repo(repo), quiet():
        return parse_repo(repo)


def check_definitions(store: FeatureStore) -> Check:
    from feast.project import Project

    contents = code_definitions(Path(store.repo_path))
    if not contents.projects:  # as the `feast plan` CLI does
        contents.projects.append(Project(name=store.project))
    with quiet():
        registry_diff, _, _ = store.plan(contents)
    # featurelib.feast_compat makes the plan ignore timestamp-only differences
    drift = [d for d in registry_diff.feast_object_diffs if d.transition_type != TransitionType.UNCHANGED]
    total = len(registry_diff.feast_object_diffs)
    if not drift:
        return Check("definitions", OK, f"code and registry agree ({total} objects)", data={"objects": total, "drift": []})
    verbs = {TransitionType.CREATE: "defined in code, not registered", TransitionType.DELETE: "registered, not in code",
             TransitionType.UPDATE: "differs"}
    details, data = [], []
    for d in drift:
        kind = d.feast_object_type.value if hasattr(d.feast_object_type, "value") else str(d.feast_object_type)
        props = [p.property_name for p in d.feast_object_property_diffs]
        details.append(f"{kind} {d.name}: {verbs.get(d.transition_type, d.transition_type.name)}"
                       + (f" ({', '.join(props)})" if props else ""))
        data.append({"type": kind, "name": d.name, "change": d.transition_type.name, "properties": props})
    return Check("definitions", FAIL, f"{len(drift)} of {total} objects drifted: run `feast plan`, then `feast apply`",
                 details, {"objects": total, "drift": data})


def _arrow_type(feast_dtype) -> pa.DataType:
    return feast_value_type_to_pa(feast_dtype.to_value_type())


def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_large_string(actual):
        actual = pa.string()
    if pa.types.is_large_list(actual) or pa.types.is_list(actual):
        return (pa.types.is_list(expected) and _compatible(actual.value_type, expected.value_type))
    if pa.types.is_timestamp(expected):
        return pa.types.is_timestamp(actual)
    return actual.equals(expected)


def check_offline(store: FeatureStore) -> Check:
    details, data, problems = [], {}, []
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        path = offline_path(store, view)
        if not path.is_file():
            problems.append(f"{view.name}: {path} does not exist")
            continue
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        ts_field = view.batch_source.timestamp_field
        expected = {jk: pa.string() for jk in view.join_keys} | {f.name: _arrow_type(f.dtype) for f in view.features}
        wrong = [f"{n} missing" for n in [*expected, ts_field] if n not in schema.names]
        wrong += [f"{n} is {schema.field(n).type}, expected {t}" for n, t in expected.items()
                  if n in schema.names and not _compatible(schema.field(n).type, t)]
        if ts_field in schema.names and not pa.types.is_timestamp(schema.field(ts_field).type):
            wrong.append(f"{ts_field} is {schema.field(ts_field).type}, expected a timestamp")
        if wrong:
            problems.append(f"{view.name}: " + "; ".join(wrong))
            continue
        lo, hi = duck.one(f"SELECT min({ts_field}), max({ts_field}) FROM {duck.parquet(path)}")
        rows = meta.metadata.num_rows
        data[view.name] = {"path": str(path), "rows": rows, "min": str(lo), "max": str(hi)}
        details.append(f"{view.name:<22} {rows:>11,} rows, {lo:%Y-%m-%d %H:%M} .. {hi:%Y-%m-%d %H:%M} UTC"
                       if lo is not None else f"{view.name:<22} empty")
    if problems:
        summary = f"{len(problems)} source(s) unusable"
        if len(data) == 0 and all(p.endswith("does not exist") for p in problems):
            summary = f"no feature data yet: `make demo` computes it (or {GENERATE_COMMANDS})"
        return Check("offline sources", FAIL, summary, problems + details, {"views": data, "problems": problems})
    return Check("offline sources", OK, f"{len(data)} Parquet files readable with the expected schema", details,
                 {"views": data})


def check_online(store: FeatureStore, sample: int = 50) -> Check:
    details, data, empty, no_offline = [], {}, [], []
    now = now_us()
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if not offline_path(store, view).is_file():
            no_offline.append(view.name)
            continue
        ids = recent_entities(store, view, sample, now)
        if not ids:
            details.append(f"{view.name:<22} no offline rows yet")
            continue
        rows = online_values(store, view, ids)
        present = [r for r in rows if r["present"]]
        ages = sorted((now - r["event_us"]) / 1e6 for r in present if r["event_us"] is not None)
        data[view.name] = {"sampled": len(ids), "present": len(present),
                           "newest_age_s": round(ages[0], 3) if ages else None,
                           "oldest_age_s": round(ages[-1], 3) if ages else None}
        if not present:
            empty.append(view.name)
            details.append(f"{view.name:<22} 0/{len(ids)} recently active entities have online values")
        else:
            details.append(f"{view.name:<22} {len(present)}/{len(ids)} present, newest {format_age(ages[0])} old, "
                           f"oldest {format_age(ages[-1])} old")
    if no_offline:
        return Check("online data", FAIL, f"nothing to load for {', '.join(no_offline)}: compute the features first "
                     "(offline sources), then `feast materialize-incremental <now>`", details, {"views": data})
    if empty:
        return Check("online data", FAIL, f"no online values for {', '.join(empty)}: run `{RESTORE_COMMAND}`",
                     details, {"views": data})
    partial = [v for v, d in data.items() if d["present"] < d["sampled"]]
    status = WARN if partial else OK
    summary = (f"{len(data)} views have online values" if not partial
               else f"{len(data)} views have online values; some recent entities are missing in {', '.join(partial)}")
    return Check("online data", status, summary, details, {"views": data})


def check_contract(store: FeatureStore, sample: int = 200, scan_limit: int = 20_000) -> Check:
    """Hashes in Redis against the stream contract (``docs/STREAM_CONTRACT.md``).

    Samples up to ``sample`` hashes of every registered view (bounded SCAN) and parses
    every field against the view's schema: unknown fields, values that do not parse, a
    missing ``_event_ts``, no expiry on a view with a TTL. Then scans up to
    ``scan_limit`` keys under the prefix for hashes of views that are not registered.
    """
    cfg = store.config.online_store
    prefix = getattr(cfg, "key_prefix", None)
    if prefix is None:
        return Check("stream contract", WARN, f"online store {cfg.type} does not use the stream contract")
    client = redis_client(store)
    views = {v.name: v for v in store.list_feature_views()}
    details, problems, data = [], [], {}
    latest_us = now_us() + contract.MAX_AHEAD_US
    for name, view in sorted(views.items()):
        keys = []
        for key in client.scan_iter(match=contract.scan_pattern(prefix, name), count=500):
            keys.append(key)
            if len(keys) >= sample:
                break
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
            pipe.pttl(key)
        replies = pipe.execute() if keys else []
        found = [problem for key, fields, pttl in zip(keys, replies[0::2], replies[1::2])
                 for problem in _hash_problems(view, key.decode(), fields, pttl, latest_us)]
        data[name] = {"sampled": len(keys), "problems": len(found)}
        details.append(f"{name:<22} {len(keys)} hashes sampled, {len(found)} problems")
        problems += found
    orphans, foreign, scanned = _unregistered(client, prefix, set(views), scan_limit)
    for view_name, count in sorted(orphans.items()):
        problems.append(f"{count} hash(es) of {view_name!r}, which is not a registered feature view")
    if foreign:
        problems.append(f"{foreign} key(s) under {prefix!r}: that do not follow the key grammar")
    data.update(scanned=scanned, orphans=orphans, foreign=foreign, problems=problems[:100])
    if problems:
        return Check("stream contract", FAIL, f"{len(problems)} problem(s) in Redis hashes", problems[:20] + details, data)
    return Check("stream contract", OK, f"sampled hashes follow the contract; {scanned:,} keys scanned, no orphans",
                 details, data)


def _hash_problems(view: FeatureView, k: str, fields: dict[bytes, bytes], pttl: int, latest_us: int) -> list[str]:
    """What is wrong with one hash ``k`` of ``view`` (its fields and its PTTL), if anything."""
    found = []
    try:
        parsed = contract.parse_key(k)
        if parsed.entity_type != contract.entity_type(view.join_keys or [view.entity_columns[0].name]):
            found.append(f"{k}: entity type {parsed.entity_type!r} does not match the view's join keys")
    except ValueError as exc:
        found.append(str(exc))
    text = {f.decode(): v for f, v in fields.items()}
    raw_ts = text.pop(contract.EVENT_TS, None)
    text.pop(contract.CREATED_TS, None)
    if raw_ts is None or not raw_ts.strip().isdigit():
        found.append(f"{k}: no valid {contract.EVENT_TS}")
    elif int(raw_ts) > latest_us:
        found.append(f"{k}: {contract.EVENT_TS} {format_us(int(raw_ts))} is more than "
                     f"{contract.MAX_AHEAD_US // 1_000_000} s ahead: reads ignore it until a write replaces it")
    types = {f.name: f.dtype.to_value_type() for f in view.features}
    for field_name, value in text.items():
        if field_name not in types:
            found.append(f"{k}: unknown field {field_name!r}")
            continue
        try:
            contract.decode_python(types[field_name], value)
        except (ValueError, TypeError) as exc:
            shown = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            found.append(f"{k}: {field_name}={shown[:40]!r} is not a valid {types[field_name].name} ({exc})")
    if view.ttl and pttl == -1:
        found.append(f"{k}: no TTL, but the view's ttl is {view.ttl}")
    return found


def _unregistered(client: Any, prefix: str, views: set[str], scan_limit: int) -> tuple[dict[str, int], int, int]:
    """Hashes under ``prefix`` of views not in ``views`` (count per view), keys that do not follow
    the key grammar, and keys scanned (at most ``scan_limit``)."""
    orphans: dict[str, int] = {}
    foreign = scanned = 0
    for key in client.scan_iter(match=contract.scan_pattern(prefix), count=1000):
        scanned += 1
        try:
            view_name = contract.parse_key(key).view
        except ValueError:
            foreign += 1
            continue
        if view_name not in views:
            orphans[view_name] = orphans.get(view_name, 0) + 1
        if scanned >= scan_limit:
            break
    return orphans, foreign, scanned


def validate(store: FeatureStore) -> Report:
    checks = [_guard("registry", lambda: check_registry(store))]
    registry_ok = checks[0].status != FAIL
    checks.append(_guard("redis", lambda: check_redis(store)))
    redis_ok = checks[-1].status != FAIL
    if registry_ok:
        checks.append(_guard("definitions", lambda: check_definitions(store)))
        checks.append(_guard("offline sources", lambda: check_offline(store)))
        if redis_ok:
            checks.append(_guard("online data", lambda: check_online(store)))
            checks.append(_guard("online coverage", lambda: check_coverage(store)))
            checks.append(_guard("stream contract", lambda: check_contract(store)))
    return Report(str(store.repo_path), store.project, checks)


__all__ = ["validate", "Report", "Check", "check_coverage", "code_definitions", "online_values", "recent_entities", "to_us"]
