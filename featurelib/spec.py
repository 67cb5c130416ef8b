"""A feature service described as JSON, to log with a model: ``feature_utils.py spec``.

The description lists every feature the service serves (type, description, unit, window,
expectations, source view, TTL, entities) and carries ``definitions_sha256``, a hash of
the registered definitions of the service, its views and the views its on-demand views
read (timestamps of registration left out, paths inside the repository relative to it), so
that a model's logged spec shows whether the features it was trained on are still the ones
served, wherever the repository is cloned. ``featurelib.model_registry`` logs it with a model
to MLflow and checks a logged model against the registry (docs/TRAINING.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import feast
from feast import FeatureStore
from google.protobuf.json_format import MessageToDict

from featurelib import tags
from featurelib.quality import expectations_of
from featurelib.repo import UserError


def _portable(value: Any, repo: str) -> Any:
    """``value`` without any ``meta`` entry (registration timestamps), at any depth (also in
    proto maps such as an on-demand view's request sources), and with paths inside the
    repository made relative to it, so that a clone elsewhere hashes the same."""
    if isinstance(value, dict):
        return {k: _portable(v, repo) for k, v in value.items() if k != "meta"}
    if isinstance(value, list):
        return [_portable(v, repo) for v in value]
    if isinstance(value, str) and value.startswith(repo):
        return value[len(repo):]
    return value


def _canonical(obj: Any, repo: Path) -> bytes:
    """A registered object as canonical JSON (protobuf's deterministic bytes still vary with
    map order here): registration timestamps left out, paths relative to ``repo``."""
    portable = _portable(MessageToDict(obj.to_proto()), repo.resolve().as_posix().rstrip("/") + "/")
    return json.dumps(portable, sort_keys=True, separators=(",", ":")).encode()


def _type(dtype: Any) -> str:
    return str(dtype).replace("PrimitiveFeastType.", "").split(":")[0].strip("<>")


def service_spec(store: FeatureStore, name: str) -> dict[str, Any]:
    services = {s.name: s for s in store.list_feature_services()}
    if name not in services:
        raise UserError(f"unknown feature service {name!r} (expected one of: {', '.join(sorted(services))})")
    service = services[name]
    views = {v.name: v for v in store.list_feature_views()}
    odfvs = {v.name: v for v in store.list_on_demand_feature_views()}
    repo = Path(store.repo_path)
    features, sources, digest = [], [], hashlib.sha256()
    digest.update(_canonical(service, repo))
    hashed: set[str] = set()
    read_by_odfvs: set[str] = set()
    for projection in sorted(service.feature_view_projections, key=lambda p: p.name):
        if projection.name in views:
            view = views[projection.name]
            expectations = {e.feature: e.describe() for e in expectations_of(view)}
            path = Path(view.batch_source.path)
            sources.append({"view": view.name, "kind": "feature_view", "entities": list(view.entities),
                            "join_keys": list(view.join_keys), "ttl_seconds": int(view.ttl.total_seconds()) if view.ttl else None,
                            "offline_source": path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path),
                            "tags": dict(sorted(view.tags.items()))})
            digest.update(_canonical(view, repo))
            hashed.add(view.name)
            for f in projection.features:
                features.append({"name": f.name, "ref": f"{view.name}:{f.name}", "view": view.name, "type": _type(f.dtype),
                                 "description": f.description, "unit": f.tags.get(tags.UNIT), "window": f.tags.get(tags.WINDOW),
                                 "expectations": expectations.get(f.name)})
        elif projection.name in odfvs:
            odfv = odfvs[projection.name]
            sources.append({"view": odfv.name, "kind": "on_demand_feature_view", "mode": odfv.mode,
                            "reads": sorted(odfv.source_feature_view_projections),
                            "request_data": {r.name: [f.name for f in r.schema] for r in odfv.source_request_sources.values()}})
            digest.update(_canonical(odfv, repo))
            read_by_odfvs |= set(odfv.source_feature_view_projections)
            for f in projection.features:
                doc = tags.output_doc(odfv.tags, f)
                features.append({"name": f.name, "ref": f"{odfv.name}:{f.name}", "view": odfv.name, "type": _type(f.dtype),
                                 "description": doc["description"], "unit": doc["unit"] or None,
                                 "window": doc["window"] or None, "expectations": None})
    for name in sorted(read_by_odfvs - hashed):  # views an on-demand view reads but the service does not list
        if name in views:
            digest.update(_canonical(views[name], repo))
    return {
        "feature_service": {"name": service.name, "description": service.description, "owner": service.owner,
                            "tags": dict(sorted(service.tags.items()))},
        "project": store.project,
        "feast_version": feast.__version__,
        "features": features,
        "sources": sources,
        "definitions_sha256": digest.hexdigest(),
    }
