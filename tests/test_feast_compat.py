"""The Feast 0.67 fixes in featurelib/feast_compat.py (see docs/FEAST_NOTES.md)."""

from __future__ import annotations

import pytest
from feast import Field
from feast.errors import FeastError
from feast.feature_view_projection import FeatureViewProjection
from feast.infra.registry import base_registry
from feast.transformation.python_transformation import PythonTransformation
from feast.types import Int64

import featurelib.online_store  # noqa: F401  (applies the fixes, as Feast's config loading does)
from featurelib.feast_compat import UnknownFeatureError


def test_unknown_feature_is_a_keyerror_and_a_404() -> None:
    projection = FeatureViewProjection(name="v", name_alias=None, desired_features=[], features=[Field(name="a", dtype=Int64)])
    assert projection.get_feature("a").name == "a"
    with pytest.raises(KeyError) as info:
        projection.get_feature("b")
    assert isinstance(info.value, UnknownFeatureError) and isinstance(info.value, FeastError)
    assert info.value.http_status_code() == 404
    assert str(info.value) == "Feature b not found in feature view v"


def test_registry_dump_treats_python_transformations_like_pandas_ones() -> None:
    assert isinstance(base_registry.PandasTransformation, tuple)
    assert PythonTransformation in base_registry.PandasTransformation


def test_a_cached_feature_service_is_built_once_per_registry_version(feature_repo) -> None:
    store = feature_repo.store()
    first = store.get_feature_service("fraud_detection", allow_cache=True)
    assert store.get_feature_service("fraud_detection", allow_cache=True) is first
    assert store.get_feature_service("fraud_detection") is not first  # the default re-reads the registry
    store.refresh_registry()
    again = store.get_feature_service("fraud_detection", allow_cache=True)
    assert again is not first and again == first


def _declared_view(description: str = "spend per card"):
    from datetime import timedelta

    from feast import Entity, FeatureView, FileSource
    from feast.types import Float64

    source = FileSource(name="spend_source", path="spend.parquet", timestamp_field="event_timestamp")
    card = Entity(name="card", join_keys=["card_id"])
    return FeatureView(name="spend", entities=[card], ttl=timedelta(days=1), source=source,
                       schema=[Field(name="card_id", dtype=Int64), Field(name="amount", dtype=Float64)],
                       description=description)


def test_plan_ignores_materialization_intervals_and_source_timestamps() -> None:
    from datetime import datetime, timedelta, timezone

    from feast import FeatureView
    from feast.diff.property_diff import TransitionType
    from feast.diff.registry_diff import diff_registry_objects
    from feast.infra.registry.registry import FeastObjectType

    stored = _declared_view()
    now = datetime.now(timezone.utc)
    stored.materialization_intervals.append((now - timedelta(hours=1), now))
    proto = stored.to_proto()
    proto.spec.batch_source.meta.created_timestamp.FromDatetime(now)
    stored = FeatureView.from_proto(proto)
    assert stored != _declared_view()  # what makes Feast list the view as updated

    unchanged = diff_registry_objects(stored, _declared_view(), FeastObjectType.FEATURE_VIEW)
    assert unchanged.transition_type == TransitionType.UNCHANGED and unchanged.feast_object_property_diffs == []

    changed = diff_registry_objects(stored, _declared_view("spend of each card"), FeastObjectType.FEATURE_VIEW)
    assert changed.transition_type == TransitionType.UPDATE
    assert [p.property_name for p in changed.feast_object_property_diffs] == ["description"]



def test_the_private_api_adapter_matches_the_installed_feast() -> None:
    """The functions over Feast's private API (featurelib/feast_compat.py) still do what this
    repository relies on with the installed Feast."""
    from types import SimpleNamespace

    from featurelib import feast_compat

    assert feast_compat.utc_now().tzinfo is not None
    assert feast_compat.parse_feature_ref("view:feature") == ("view", None, "feature")
    nodes, params = feast_compat.parse_redis_connection_string("redis.example:6380,password=s3cret,ssl=true")
    assert nodes == [{"host": "redis.example", "port": "6380"}] and params["password"] == "s3cret" and params["ssl"]
    built = []
    holder = SimpleNamespace()
    for _ in range(3):
        assert feast_compat.cached_on(holder, "_k", lambda: built.append(1) or "value") == "value"
    assert built == [1]
