"""Loading a feature repository and looking things up in it, with errors a person can act on."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from feast import Entity, FeatureStore, FeatureView

from featurelib import feast_compat
from featurelib.paths import locate_repo


class UserError(Exception):
    """Bad input or a missing prerequisite. The CLI prints the message on one line and exits 2."""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Feast's and ibis's chatter (deprecation warnings, progress prints) around a call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            logging.disable(previous)


def registry_file(store: FeatureStore) -> Path:
    path = Path(str(store.config.registry.path))
    return path if path.is_absolute() else Path(store.repo_path) / path


def load_store(repo: Path | str | None = None, *, require_registry: bool = True) -> FeatureStore:
    """The ``FeatureStore`` of ``repo`` (default: ``$FEAST_REPO``, else the current directory if it
    holds ``feature_store.yaml``, else this checkout).

    Raises ``UserError`` when there is no ``feature_store.yaml`` or, with
    ``require_registry``, when ``feast apply`` has not written the registry yet.
    """
    root = locate_repo(repo).resolve()
    if not (root / "feature_store.yaml").is_file():
        raise UserError(f"no feature_store.yaml in {root}")
    with quiet():
        store = FeatureStore(repo_path=str(root))
    if require_registry and not registry_file(store).is_file():
        raise UserError(f"registry not found at {registry_file(store)}: run `feast apply` in {root} first")
    return store


def entity(store: FeatureStore, name: str) -> Entity:
    """The entity called ``name`` (``card``, ``user``, ...) or a ``UserError`` listing the known ones."""
    entities = {e.name: e for e in store.list_entities(allow_cache=True)}
    if name not in entities:
        known = ", ".join(sorted(entities)) or "none registered"
        raise UserError(f"unknown entity type {name!r} (expected one of: {known})")
    return entities[name]


def views_of(store: FeatureStore, entity_name: str) -> list[FeatureView]:
    """Feature views keyed by exactly this one entity, sorted by name."""
    return sorted((v for v in store.list_feature_views(allow_cache=True) if v.entities == [entity_name]),
                  key=lambda v: v.name)


def feature_refs(view: FeatureView) -> list[str]:
    return [f"{view.name}:{f.name}" for f in view.features]


def redis_client(store: FeatureStore):
    """A redis-py client built exactly as the configured online store builds its own."""
    return feast_compat.online_client(store)


def redis_address(store: FeatureStore) -> str:
    return store.config.online_store.connection_string.split(",")[0]


def view_names(store: FeatureStore, names: Sequence[str]) -> list[str] | None:
    """``names`` checked against the registered feature views (``UserError`` naming the first
    unknown one and the known ones); ``None`` for no names (every view)."""
    known = {v.name for v in store.list_feature_views()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown feature view {unknown[0]!r} (expected one of: {', '.join(sorted(known))})")
    return list(names) or None


def require_redis(store: FeatureStore, timeout: float = 2.0) -> None:
    """Fail fast, with a ``UserError``, when the online store's Redis does not answer.

    (redis-py retries with backoff by default, which turns "down" into a long wait.)"""
    from featurelib.redis_connection import connection_params
    from featurelib.redis_server import probe_client

    nodes, params = connection_params(store.config.online_store)
    try:
        probe_client(nodes[0]["host"], int(nodes[0]["port"]), params.get("password"), timeout,
                     ssl=bool(params.get("ssl", False))).ping()
    except Exception as exc:
        raise UserError(f"cannot reach Redis at {redis_address(store)} ({str(exc).splitlines()[0]}); "
                        "set REDIS_CONNECTION_STRING or start redis-server") from None
