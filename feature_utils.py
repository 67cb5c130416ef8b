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
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), envvar="FEAST_REPO", default=HERE,
              show_default="the directory of this script", help="Feature repository: the directory of feature_store.yaml.")
@click.pass_context
def cli(ctx: click.Context, repo: Path) -> None:
    """Validate, audit and document the real-time feature store.

    \b
    Quick tour:
      python feature_utils.py validate                      # is everything healthy?
      python feature_utils.py validate-pit --entity-id card_12345 --entity-type card
      python feature_utils.py docs --output-file docs/FEATURES.md

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


if __name__ == "__main__":
    cli()
