#!/usr/bin/env python
"""Validate, audit and document this feature store.

Every command is a thin shell over ``featurelib``; run any of them with ``--help``.
Exit codes: 0 all good, 1 a check failed, 2 bad input or a missing prerequisite
(unknown entity or feature, missing registry, unreachable Redis).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # so that `python feast/feature_utils.py` works from anywhere
    sys.path.insert(0, str(HERE))

from featurelib.fast_start import install_import_hook  # noqa: E402
from featurelib.paths import repo_option  # noqa: E402

install_import_hook()  # Feast's run-time type checks compiled on first use: a third of the start-up time


class BadInput(click.ClickException):
    """Printed as one line, ``Error: ...``, with exit code 2."""

    exit_code = 2


def one_line_errors(fn: Callable) -> Callable:
    """Turn the library's errors into one-line messages with exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from featurelib.repo import UserError

        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise BadInput(str(exc)) from None

    return wrapper


def emit(report: Any, as_json: bool) -> None:
    click.echo(json.dumps(report.to_dict(), indent=2, default=str) if as_json else report.render())
    if not report.ok:
        sys.exit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@repo_option("Feature repository: the directory of feature_store.yaml.", default=HERE, shown="the directory of this script")
@click.pass_context
def cli(ctx: click.Context, repo: Path) -> None:
    """Validate, audit and document the real-time feature store.

    \b
    Quick tour:
      python feature_utils.py validate                      # is everything healthy?
      python feature_utils.py validate-pit --entity-id card_12345 --entity-type card
      python feature_utils.py docs --output-file docs/FEATURES.md
      python feature_utils.py quality                       # values within their expectations?
      python feature_utils.py freshness                     # data as fresh as each view declares?
      python feature_utils.py drift                         # distributions shifted?
      python feature_utils.py skew-audit                    # online equal to offline, at scale?
      python feature_utils.py restore-online                # rebuild an online store that lost keys
      python feature_utils.py spec --feature-service fraud_detection
      python feature_utils.py serve                         # the HTTP feature server on :6566

    The Redis connection comes from REDIS_CONNECTION_STRING (default localhost:6379).
    """
    ctx.obj = repo


def _store(ctx: click.Context, require_registry: bool = True):
    from featurelib.repo import load_store

    return load_store(ctx.obj, require_registry=require_registry)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for CI).")
@click.pass_context
@one_line_errors
def validate(ctx: click.Context, as_json: bool) -> None:
    """Check the registry, Redis, definitions, offline files, online data and the stream contract.

    \b
    Checks, in order:
      registry         the file registry loads; what it holds, when it was updated
      redis            PING round-trip time and server version
      definitions      the objects in the Python files equal the registered ones
      offline sources  every view's Parquet file has the declared schema
      online data      recently active entities have online values; their age
      online coverage  a sample of the entities whose latest offline row is within the
                       view's ttl have a hash online (fails below 99 %)
      stream contract  sampled Redis hashes parse against their view's schema; no
                       unknown fields, no missing TTL, no hashes of unregistered views

    Exits 1 when any check fails.
    """
    from featurelib.validation import validate as run

    emit(run(_store(ctx, require_registry=False)), as_json)


@cli.command("validate-pit")
@click.option("--entity-id", required=True, help="The entity, e.g. card_12345.")
@click.option("--entity-type", required=True, help="card, user, device or session.")
@click.option("--feature", "features", multiple=True, metavar="[VIEW:]NAME",
              help="Compare only this feature (repeatable). Default: every feature of every view of the entity.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@one_line_errors
def validate_pit(ctx: click.Context, entity_id: str, entity_type: str, features: tuple[str, ...], as_json: bool) -> None:
    """Compare one entity's online values with the offline point-in-time values.

    For every feature view of the entity type, reads the online values and their event
    timestamp T, then the offline values as of exactly T, and compares them feature by
    feature (floats bit for bit). Exits 1 on any difference or missing online value.
    """
    from featurelib.pit import validate_pit as run

    emit(run(_store(ctx), entity_type, entity_id, list(features) or None), as_json)


@cli.command()
@click.option("--output-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write Markdown here (default: print it).")
@click.pass_context
@one_line_errors
def docs(ctx: click.Context, output_file: Path | None) -> None:
    """Generate the feature catalog (Markdown) from the registry.

    Lists entities, data sources, feature views with every feature's type, unit, window
    and description, on-demand views and feature services. Deterministic: the committed
    docs/FEATURES.md must equal a fresh rendering.
    """
    from featurelib.docs import render_feature_docs

    text = render_feature_docs(_store(ctx))
    if output_file is None:
        click.echo(text, nl=False)
        return
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.write_text(text)
    click.echo(f"wrote {output_file} ({len(text.splitlines())} lines)", err=True)


def _range(text: str, option: str) -> tuple[int, int]:
    from featurelib.timeutil import parse_range

    try:
        return parse_range(text)
    except ValueError as exc:
        raise BadInput(f"{option}: {exc}") from None


def _require_redis(store) -> None:
    from featurelib.repo import require_redis

    require_redis(store)


def _views(store, names: tuple[str, ...]) -> list[str] | None:
    from featurelib.repo import view_names

    return view_names(store, names)


@cli.command()
@click.option("--range", "window", default="1d..now", show_default=True, metavar="START..END",
              help="Offline rows to check: ages (7d, 2h) or ISO-8601 times.")
@click.option("--sample", default=200, show_default=True, help="Recently active entities whose online values are checked.")
@click.option("--max-violations", default=0.0, show_default=True,
              help="Share of rows (0 to 1) allowed to break an expectation before the check fails.")
@click.option("--view", "views", multiple=True, help="Check only this feature view (repeatable).")
@click.option("--offline-only", is_flag=True, help="Skip the online sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@one_line_errors
def quality(ctx: click.Context, window: str, sample: int, max_violations: float, views: tuple[str, ...],
            offline_only: bool, as_json: bool) -> None:
    """Check feature values against the expectations declared next to each feature.

    Expectations are field tags in feature_views.py (expect.min, expect.max, expect.in,
    expect.max_null_share) and appear in docs/FEATURES.md. Reports per feature the number
    of violating rows with examples, for the offline rows in --range and the online values
    of recently active entities. Exits 1 when a feature breaks its expectations in more
    than --max-violations of its rows, or has too many nulls.
    """
    from featurelib.quality import quality as run

    store = _store(ctx)
    start, end = _range(window, "--range")
    if not offline_only:
        _require_redis(store)
    emit(run(store, start, end, sample=sample, max_violation_share=max_violations, views=_views(store, views),
             online=not offline_only), as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@one_line_errors
def freshness(ctx: click.Context, as_json: bool) -> None:
    """Check that each feature view's data is as fresh as the view declares.

    Each view's tag freshness_max_age (10m for the stream-fed views, 1d for batch ones) is
    compared with the age of the newest raw event its offline file was computed from, and
    with the age of the newest online row among recently active entities. Exits 1 when any
    view is stale.
    """
    from featurelib.freshness import freshness as run

    store = _store(ctx)
    _require_redis(store)
    emit(run(store), as_json)


@cli.command()
@click.option("--reference", default="7d..1d", show_default=True, metavar="START..END", help="Reference window.")
@click.option("--recent", default="1d..now", show_default=True, metavar="START..END", help="Window compared with it.")
@click.option("--training-set", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Instead: a model's training set (Parquet with feature columns) against --served, or else "
                   "against online values now.")
@click.option("--served", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="With --training-set: Parquet of recently served features, built like the training set.")
@click.option("--online-sample", default=500, show_default=True, help="With --training-set: entities read online per view.")
@click.option("--psi", "psi_threshold", default=0.2, show_default=True, help="PSI at which a feature counts as drifted.")
@click.option("--plots", type=click.Path(file_okay=False, path_type=Path), default=Path("data/drift"), show_default=True,
              help="Directory for a PNG histogram of every flagged feature.")
@click.option("--view", "views", multiple=True, help="Compare only this feature view (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@one_line_errors
def drift(ctx: click.Context, reference: str, recent: str, training_set: Path | None, served: Path | None, online_sample: int,
          psi_threshold: float, plots: Path, views: tuple[str, ...], as_json: bool) -> None:
    """Compare feature distributions: a reference window against a recent one.

    Per feature: population stability index over the reference's deciles (or categories),
    and a two-sample test (Kolmogorov-Smirnov, or chi-square) that flags only with an effect
    size of 0.1 or more. Flagged features get a PNG histogram in --plots. Exits 1 when any
    feature is flagged.

    With --training-set, a model's training set is compared with --served (features served
    recently, built the same way: the fair comparison) or with online values of recently
    active entities (a different population: see docs/MONITORING.md).
    """
    from featurelib.drift import drift as run
    from featurelib.drift import drift_against_training

    store = _store(ctx)
    plot_dir = plots if plots.is_absolute() else Path(store.repo_path) / plots
    if served is not None and training_set is None:
        raise BadInput("--served compares with a training set: give --training-set too")
    if training_set is not None and served is None:
        _require_redis(store)
    if training_set is not None:
        emit(drift_against_training(store, training_set, served=served, sample=online_sample,
                                    psi_threshold=psi_threshold, plot_dir=plot_dir, views=_views(store, views)), as_json)
        return
    emit(run(store, _range(reference, "--reference"), _range(recent, "--recent"), psi_threshold=psi_threshold,
             plot_dir=plot_dir, views=_views(store, views)), as_json)


@cli.command("skew-audit")
@click.option("--entities", default=200, show_default=True, type=click.IntRange(min=1),
              help="Entities sampled per feature view.")
@click.option("--all", "all_entities", is_flag=True, help="Audit every entity in the online store.")
@click.option("--max-keys-per-second", default=10_000.0, show_default=True,
              help="Keys the SCAN may make Redis examine per second (keeps a production Redis comfortable).")
@click.option("--max-mismatch-rate", default=0.0, show_default=True,
              help="Share of entities (0 to 1) allowed to differ per feature before the audit fails.")
@click.option("--view", "views", multiple=True, help="Audit only this feature view (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@one_line_errors
def skew_audit(ctx: click.Context, entities: int, all_entities: bool, max_keys_per_second: float,
               max_mismatch_rate: float, views: tuple[str, ...], as_json: bool) -> None:
    """Compare online values with offline point-in-time values for many entities.

    validate-pit at scale: entities are sampled from the online store with a bounded,
    paced SCAN; their offline values are read as of each online event time. Reports per
    feature the mismatch rate, values missing or extra online, and the largest numeric
    differences. Exits 1 when a feature differs for more than --max-mismatch-rate.
    """
    from featurelib.skew import skew_audit as run

    store = _store(ctx)
    _require_redis(store)
    emit(run(store, per_view=None if all_entities else entities, max_keys_per_second=max_keys_per_second,
             max_mismatch_rate=max_mismatch_rate, views=_views(store, views)), as_json)


@cli.command("restore-online")
@click.option("--skip-build", is_flag=True,
              help="The offline files are current: materialize them without recomputing them from data/raw.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
@one_line_errors
def restore_online(ctx: click.Context, skip_build: bool, as_json: bool) -> None:
    """Rebuild the online store after it lost keys (a Redis restarted without persistence).

    Recomputes every view's offline file from data/raw (unless --skip-build), then
    materializes every view from its earliest offline row to now through Feast. Rows
    already newer online are kept. Reports each view's keys before and after. Run it when
    `validate` reports missing online coverage; `feast materialize-incremental` restores
    only the rows that changed since its last run.
    """
    from featurelib.restore import restore_online as run

    store = _store(ctx)
    emit(run(store, build=not skip_build, progress=lambda line: click.echo(line, err=True)), as_json)


@cli.command()
@click.option("--feature-service", "service", required=True, help="For example fraud_detection.")
@click.option("--output-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the JSON here (default: print it).")
@click.option("--json", "as_json", is_flag=True, help="Accepted like the other commands' --json: the spec is JSON either way.")
@click.pass_context
@one_line_errors
def spec(ctx: click.Context, service: str, output_file: Path | None, as_json: bool) -> None:
    """Describe a feature service as JSON, to log with a model (mlflow.log_dict).

    Lists every feature with type, description, unit, window, expectations and source
    view, and definitions_sha256, a hash of the registered definitions that changes
    whenever a feature, view or the service changes.
    """
    from featurelib.spec import service_spec

    text = json.dumps(service_spec(_store(ctx), service), indent=2)
    if output_file is None:
        click.echo(text)
    else:
        output_file.write_text(text + "\n")
        click.echo(f"wrote {output_file}", err=True)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", "-p", default=6566, show_default=True, help="Port (feast serve's).")
@click.option("--workers", "-w", default=2, show_default=True, help="Worker processes (one per core).")
@click.option("--max-entities", default=1000, show_default=True, help="Entity rows per request; more is a 413.")
@click.option("--max-body-bytes", default=1 << 20, show_default=True, help="Request body size; more is a 413.")
@click.option("--deadline-ms", default=1000, show_default=True,
              help="Longest a request waits for Redis before answering 503.")
@click.option("--redis-timeout-ms", default=500, show_default=True, help="Timeout of connecting to Redis.")
@click.option("--allow-writes", is_flag=True,
              help="Serve /push and /write-to-online-store to clients sending FEATURE_SERVER_WRITE_TOKEN.")
@click.option("--access-log", is_flag=True, help="Log every request.")
@click.pass_context
@one_line_errors
def serve(ctx: click.Context, host: str, port: int, workers: int, max_entities: int, max_body_bytes: int,
          deadline_ms: int, redis_timeout_ms: int, allow_writes: bool, access_log: bool) -> None:
    """Serve Feast's /get-online-features API over the compiled read path (docs/SERVING.md).

    Same requests and responses as `feast serve`; bad requests get a 4xx naming the field,
    a down or hung Redis a 503 within the deadline. GET /health (liveness), GET /ready
    (Redis and registry), GET /metrics (Prometheus). Writes are off unless --allow-writes.
    """
    from featurelib.serving.http import Limits
    from featurelib.serving.server import serve as run_server

    limits = Limits(max_entities=max_entities, max_body_bytes=max_body_bytes, deadline_ms=deadline_ms,
                    redis_timeout_ms=redis_timeout_ms, allow_writes=allow_writes)
    run_server(ctx.obj, host, port, workers, limits, access_log=access_log)


if __name__ == "__main__":
    cli()
