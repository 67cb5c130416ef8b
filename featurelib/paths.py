"""Where things live inside a feature repository (the directory of ``feature_store.yaml``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ENV = "FEAST_REPO"
"""The environment variable naming the feature repository, for every command."""

REPO_ROOT = Path(__file__).resolve().parent.parent
"""This checkout's feature repository."""


def default_repo() -> Path:
    """The feature repository a command works on by default: the current directory when it
    holds a ``feature_store.yaml`` (as ``feast`` itself assumes), else this checkout."""
    cwd = Path.cwd()
    return cwd if (cwd / "feature_store.yaml").is_file() else REPO_ROOT


def locate_repo(repo: Path | str | None = None) -> Path:
    """The feature repository a command works on: ``repo`` when given, else ``$FEAST_REPO``, else
    :func:`default_repo`. Every command and ``repo.load_store`` find it this one way."""
    return Path(repo or os.environ.get(REPO_ENV) or default_repo())


def repo_option(help: str, default: Path | None = None, shown: str | None = None) -> Callable[[Any], Any]:
    """The ``--repo`` option of every command (``FEAST_REPO`` in the environment too), resolved by
    :func:`locate_repo`; ``default`` (described in ``--help`` as ``shown``) replaces
    :func:`default_repo` as the last resort."""
    import click

    shown = shown or "the current directory if it holds feature_store.yaml, else this checkout"
    return click.option("--repo", type=click.Path(file_okay=False, path_type=Path), envvar=REPO_ENV, default=None,
                        show_default=shown, help=help,
                        callback=lambda _ctx, _param, value: locate_repo(value or default))


def data_dir(repo: Path | None = None) -> Path:
    """``data/`` of ``repo`` (default: :func:`default_repo`)."""
    return (repo or default_repo()) / "data"


def raw_dir(repo: Path | None = None) -> Path:
    """Raw events: ``raw/transactions/**.parquet`` and ``raw/clickstream/**.parquet``."""
    return data_dir(repo) / "raw"


def features_dir(repo: Path | None = None) -> Path:
    """Offline store: one Parquet file of feature rows per feature view."""
    return data_dir(repo) / "features"


def feature_file(view_name: str, repo: Path | None = None) -> Path:
    return features_dir(repo) / f"{view_name}.parquet"


def registry_path(repo: Path | None = None) -> Path:
    return data_dir(repo) / "registry.db"
