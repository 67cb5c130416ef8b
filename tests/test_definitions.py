"""The Feast definitions: complete metadata, and schemas that match what the engine writes."""

from __future__ import annotations

import pytest
from feast.data_source import RequestSource
from feast.type_map import feast_value_type_to_pa

from featurelib import semantics as s
from featurelib.engine import output_schema
from featurelib.validation import code_definitions
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def contents():
    return code_definitions(ROOT)


def test_every_object_has_description_owner_and_tags(contents) -> None:
    objects = [*contents.entities, *contents.data_sources, *contents.feature_views, *contents.on_demand_feature_views,
               *contents.feature_services]
    objects = [o for o in objects if not o.name.startswith("__")]  # Feast adds its own __dummy entity
    assert len(objects) == 4 + 11 + 5 + 1 + 2
    for obj in objects:
        assert obj.description.strip(), f"{obj.name} has no description"
        assert obj.owner, f"{obj.name} has no owner"
        assert obj.tags, f"{obj.name} has no tags"


def test_every_field_states_unit_and_window(contents) -> None:
    for view in contents.feature_views:
        for field in view.features:
            assert "Unit:" in field.description and "Window:" in field.description, f"{view.name}.{field.name}"
            assert field.tags.get("unit") and field.tags.get("window"), f"{view.name}.{field.name}"
    for odfv in contents.on_demand_feature_views:
        for field in odfv.features:
            doc = odfv.tags.get(f"feature.{field.name}.description", "")
            assert "Unit:" in doc and "Window:" in doc, f"{odfv.name}.{field.name}"
    for source in contents.data_sources:
        if isinstance(source, RequestSource):
            assert all(f.description for f in source.schema), source.name


@pytest.mark.parametrize("name", list(s.VIEWS))
def test_view_schema_is_what_the_engine_writes(contents, name: str) -> None:
    view = next(v for v in contents.feature_views if v.name == name)
    semantics = s.VIEWS[name]
    join_keys = {e.name: e.join_key for e in contents.entities}
    assert [join_keys[e] for e in view.entities] == [semantics.join_key]
    assert [f.name for f in view.features] == list(semantics.features)
    written = output_schema(semantics)
    for field in view.features:
        assert written.field(field.name).type == feast_value_type_to_pa(field.dtype.to_value_type()), field.name


def test_services(contents) -> None:
    services = {svc.name: sorted(p.name for p in svc.feature_view_projections) for svc in contents.feature_services}
    assert services == {
        "fraud_detection": ["card_profile_24h", "device_activity_24h", "transaction_request_features", "transaction_stats_5m"],
        "personalization": ["session_activity", "user_engagement_5m"],
    }


def test_seed_feature_lists_are_exact(contents) -> None:
    views = {v.name: [f.name for f in v.features] for v in contents.feature_views}
    assert views["transaction_stats_5m"] == [
        "txn_count_5m", "txn_count_30m", "txn_count_24h", "amount_sum_5m", "amount_avg_5m", "amount_max_5m",
        "unique_countries_5m", "geo_diversity_score", "time_since_last_txn_min", "is_weekend", "velocity_score",
        "high_risk_txn_ratio", "is_high_velocity"]
    assert views["user_engagement_5m"] == [
        "session_duration_min", "pages_per_session", "avg_dwell_time_sec", "avg_scroll_depth", "click_rate_5m",
        "cart_adds_session", "conversion_rate_session", "engagement_score", "is_likely_purchaser"]


def test_definitions_of_another_repository_are_its_own(tmp_path, monkeypatch) -> None:
    """A process that imported one repository's ``data_sources`` (a notebook, a test) still reads
    another repository's own files: validate must not report drift that is not there."""
    import sys

    from tests.conftest import copy_repo

    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.delitem(sys.modules, "data_sources", raising=False)
    __import__("data_sources")
    other = copy_repo(tmp_path / "other")
    sources = [s.path for s in code_definitions(other).data_sources if getattr(s, "path", None)]
    assert sources and all(p.startswith(str(other)) for p in sources), sources
    assert sys.modules["data_sources"].__file__ == str(ROOT / "data_sources.py")
