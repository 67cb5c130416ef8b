"""Feature documentation generated from the registry: the library behind ``feature_utils.py docs``.

The output is deterministic (sorted, no timestamps, paths relative to the repository)
so that the committed ``docs/FEATURES.md`` can be checked against a fresh rendering.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import FeatureService, FeatureStore, FeatureView
from feast.data_source import PushSource, RequestSource
from feast.infra.offline_stores.file_source import FileSource
from feast.on_demand_feature_view import OnDemandFeatureView

from featurelib import tags


def _cell(text: object) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ").strip()


def _tags(view_tags: dict[str, str]) -> str:
    shown = {k: v for k, v in sorted(view_tags.items()) if not k.startswith(tags.HIDDEN_PREFIXES)}
    return ", ".join(f"`{k}={v}`" for k, v in shown.items()) or "none"


def _ttl(ttl: timedelta | None) -> str:
    if not ttl:
        return "none"
    seconds = int(ttl.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _type(dtype: object) -> str:
    return str(dtype).replace("PrimitiveFeastType.", "").replace("<", "").replace(">", "").split(":")[0]


def _relative(path: str, repo: Path) -> str:
    p = Path(path)
    try:
        return p.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return path


def _source_location(source, repo: Path) -> str:
    if isinstance(source, PushSource):
        return f"push (offline: `{_relative(source.batch_source.path, repo)}`)"
    if isinstance(source, FileSource):
        return f"`{_relative(source.path, repo)}`"
    if isinstance(source, RequestSource):
        return "request data"
    return type(source).__name__


def _feature_table(rows: list[tuple[str, str, str, str, str, str]]) -> list[str]:
    out = ["| Feature | Type | Unit | Window | Expectations | Description |", "|---|---|---|---|---|---|"]
    out += [f"| `{n}` | {_cell(t)} | {_cell(u)} | {_cell(w)} | {_cell(e)} | {_cell(d)} |" for n, t, u, w, e, d in rows]
    return out


def _expectations(view: FeatureView) -> dict[str, str]:
    from featurelib.quality import expectations_of

    out = {e.feature: e.describe() for e in expectations_of(view)}
    for f in view.features:
        if not tags.drift_compared(f.tags):
            out[f.name] = "; ".join(filter(None, [out.get(f.name), "no drift check"]))
    return out


def _view_section(view: FeatureView, repo: Path) -> list[str]:
    expectations = _expectations(view)
    rows = [(f.name, _type(f.dtype), f.tags.get(tags.UNIT, ""), f.tags.get(tags.WINDOW, ""), expectations.get(f.name, ""),
             f.description) for f in view.features]
    keys = ", ".join(f"`{k}`" for k in view.join_keys)
    return [
        f"### `{view.name}`", "", _cell(view.description), "",
        f"- Entity: {', '.join(view.entities)} ({keys}); TTL: {_ttl(view.ttl)}; online: {'yes' if view.online else 'no'}"
        + (f"; fresh within {view.tags[tags.FRESHNESS_MAX_AGE]}" if view.tags.get(tags.FRESHNESS_MAX_AGE) else ""),
        f"- Source: `{view.stream_source.name if view.stream_source else view.batch_source.name}`, "
        f"{_source_location(view.stream_source or view.batch_source, repo)}",
        f"- Owner: {view.owner or 'none'}; tags: {_tags(view.tags)}", "",
        *_feature_table(rows), "",
    ]


def _odfv_section(odfv: OnDemandFeatureView) -> list[str]:
    sources = [f"`{p.name}` ({', '.join(f'`{f.name}`' for f in p.features)})"
               for p in sorted(odfv.source_feature_view_projections.values(), key=lambda p: p.name)]
    requests = [f"`{r.name}` ({', '.join(f'`{f.name}`' for f in r.schema)})"
                for r in sorted(odfv.source_request_sources.values(), key=lambda r: r.name)]
    rows = []
    for f in odfv.features:
        doc = tags.output_doc(odfv.tags, f)
        rows.append((f.name, _type(f.dtype), doc["unit"], doc["window"], "", doc["description"]))
    return [
        f"### `{odfv.name}`", "", _cell(odfv.description), "",
        f"- Mode: {odfv.mode}; reads features {', '.join(sources) or 'none'}; request data {', '.join(requests) or 'none'}",
        f"- Owner: {odfv.owner or 'none'}; tags: {_tags(odfv.tags)}", "",
        *_feature_table(rows), "",
    ]


def _service_section(service: FeatureService) -> list[str]:
    lines = [f"### `{service.name}`", "", _cell(service.description), "",
             f"- Owner: {service.owner or 'none'}; tags: {_tags(service.tags)}", "",
             "| Feature view | Features |", "|---|---|"]
    for projection in sorted(service.feature_view_projections, key=lambda p: p.name):
        lines.append(f"| `{projection.name}` | {', '.join(f'`{f.name}`' for f in projection.features)} |")
    return lines + [""]


def render_feature_docs(store: FeatureStore) -> str:
    """Markdown describing every registered object of the store's project."""
    repo = Path(store.repo_path)
    entities = sorted(store.list_entities(), key=lambda e: e.name)
    sources = sorted(store.list_data_sources(), key=lambda s: s.name)
    views = sorted(store.list_feature_views(), key=lambda v: v.name)
    odfvs = sorted(store.list_on_demand_feature_views(), key=lambda v: v.name)
    services = sorted(store.list_feature_services(), key=lambda s: s.name)
    n_features = sum(len(v.features) for v in views) + sum(len(v.features) for v in odfvs)
    lines = [
        "# Feature catalog", "",
        f"Generated from the registry of project `{store.project}` by "
        "`python feature_utils.py docs --output-file docs/FEATURES.md`; do not edit by hand. "
        "Window semantics (bounds, ties, nulls, late events) are in [SEMANTICS.md](SEMANTICS.md); "
        "the expectations are checked by `python feature_utils.py quality` ([MONITORING.md](MONITORING.md)).", "",
        f"{len(entities)} entities, {len(views)} feature views and {len(odfvs)} on-demand feature views with "
        f"{n_features} features in all, {len(services)} feature services.", "",
        "## Entities", "", "| Entity | Join key | Type | Description | Owner | Tags |", "|---|---|---|---|---|---|",
    ]
    for e in entities:
        lines.append(f"| `{e.name}` | `{e.join_key}` | {e.value_type.name} | {_cell(e.description)} | {e.owner} | {_tags(e.tags)} |")
    lines += ["", "## Data sources", "", "| Source | Location | Timestamp field | Description |", "|---|---|---|---|"]
    for s in sources:
        ts = getattr(s, "timestamp_field", "") or ""
        lines.append(f"| `{s.name}` | {_source_location(s, repo)} | {f'`{ts}`' if ts else ''} | {_cell(s.description)} |")
    lines += ["", "## Feature views", ""]
    for v in views:
        lines += _view_section(v, repo)
    lines += ["## On-demand feature views", ""]
    for o in odfvs:
        lines += _odfv_section(o)
    lines += ["## Feature services", ""]
    for s in services:
        lines += _service_section(s)
    return "\n".join(lines).rstrip() + "\n"
