"""Reading a repository's feature data, for every check and audit (validate, validate-pit,
quality, drift, freshness, skew-audit, restore-online): the offline Parquet file of a view, the
entities most recently active in it, and what the online store serves for some entities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from feast import FeatureStore, FeatureView

from featurelib import duck
from featurelib.repo import UserError, feature_refs, quiet
from featurelib.timeutil import format_us, now_us


def offline_path(store: FeatureStore, view: FeatureView) -> Path:
    path = Path(view.batch_source.path)
    return path if path.is_absolute() else Path(store.repo_path) / path


def existing_offline_path(store: FeatureStore, view: FeatureView) -> Path:
    """``offline_path``, or a ``UserError`` when the file is not there."""
    path = offline_path(store, view)
    if not path.is_file():
        raise UserError(f"the offline file of {view.name} does not exist: {path} (run python -m featurelib.batch)")
    return path


def recent_entities(store: FeatureStore, view: FeatureView, n: int, at_us: int | None = None) -> list[str]:
    """The ``n`` entities of ``view`` with the latest offline rows at or before ``at_us`` (default: now)."""
    key = view.join_keys[0]
    at = format_us(at_us if at_us is not None else now_us())
    rows = duck.rows(
        f"SELECT {key} FROM {duck.parquet(existing_offline_path(store, view))} "
        f"WHERE event_timestamp <= TIMESTAMPTZ '{at}' GROUP BY {key} ORDER BY max(event_timestamp) DESC, {key} "
        f"LIMIT {int(n)}")
    return [r[0] for r in rows]


def online_values(store: FeatureStore, view: FeatureView, ids: list[str]) -> list[dict[str, Any]]:
    """Per entity: ``{"values": {feature: value}, "present": bool, "event_us": int | None}``.

    ``present`` means the online store holds a row for the entity: a PRESENT status with an
    event timestamp (``event_us``, the latest over the view's features)."""
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    key = view.join_keys[0]
    with quiet():
        response = store.get_online_features(features=feature_refs(view), entity_rows=[{key: i} for i in ids])
    proto = response.proto
    names = list(proto.metadata.feature_names.val)
    table = response.to_dict()
    out = []
    for row in range(len(ids)):
        present, stamps = False, []
        for col, result in zip(names, proto.results):
            if col == key:
                continue
            ts = result.event_timestamps[row]
            if ts.seconds or ts.nanos:  # Feast's built-in store says PRESENT for missing entities, with no time
                stamps.append(ts.seconds * 1_000_000 + ts.nanos // 1_000)
                present = present or result.statuses[row] == FieldStatus.PRESENT
        out.append({"values": {f.name: table[f.name][row] for f in view.features}, "present": present,
                    "event_us": max(stamps) if stamps else None})
    return out
