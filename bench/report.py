"""Where a benchmark script leaves its figures: ``<out>/<name>.json`` (everything measured)
and ``<out>/<name>.md`` (the table people read), the table also printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def save(out: Path, name: str, results: Any, table: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    (out / f"{name}.md").write_text("\n".join(table) + "\n")
    click.echo("\n".join(table))
