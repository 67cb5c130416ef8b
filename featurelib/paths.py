"""Where things live inside a feature repository (the directory of ``feature_store.yaml``)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
"""This checkout's feature repository."""


def default_repo() -> Path:
    """The feature repository a command works on by default: the current directory when it
    holds a ``feature_store.yaml`` (as ``feast`` itself assumes), else this checkout."""
    cwd = Path.cwd()
    return cwd if (cwd / "feature_store.yaml").is_file() else REPO_ROOT


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
