"""The synthetic event generator: deterministic, realistic enough, and the README's ids exist."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from featurelib.generate import (
    CLICKSTREAM_SCHEMA,
    TRANSACTION_SCHEMA,
    GeneratorConfig,
    generate_clickstream,
    generate_transactions,
)
from featurelib.timeutil import HOUR, MINUTE, to_us

CFG = GeneratorConfig(n_cards=400, days=3, seed=11, end_us=to_us("2026-11-26T12:00:00Z"))


@pytest.fixture(scope="module")
def txns():
    return generate_transactions(CFG)


@pytest.fixture(scope="module")
def clicks():
    return generate_clickstream(CFG)


def test_same_config_same_events(txns, clicks) -> None:
    assert generate_transactions(CFG).equals(txns)
    assert generate_clickstream(CFG).equals(clicks)
    other = generate_transactions(GeneratorConfig(n_cards=400, days=3, seed=12, end_us=CFG.end_us))
    assert not other.equals(txns)


def test_schemas_order_and_bounds(txns, clicks) -> None:
    assert txns.schema == TRANSACTION_SCHEMA and clicks.schema == CLICKSTREAM_SCHEMA
    for table in (txns, clicks):
        t = table.column("event_timestamp").cast("int64").to_numpy()
        assert (t[1:] >= t[:-1]).all()
        assert t.min() >= CFG.start_us and t.max() < CFG.end_us
    assert pc.min(txns.column("amount_cents")).as_py() >= 50
    assert len(txns.column("txn_id").unique()) == txns.num_rows


def test_generated_events_follow_the_raw_event_schema(txns, clicks) -> None:
    """Every generated event passes the rules the processor and the batch job apply."""
    from featurelib.raw_events import problems

    for kind, table in (("transactions", txns), ("clickstream", clicks)):
        assert [p for p in problems(kind, table, CFG.end_us) if p is not None] == []


def test_readme_ids_exist_with_recent_activity(txns, clicks) -> None:
    t = txns.column("event_timestamp").cast("int64")
    for card in ("card_12345", "card_67890"):
        mine = pc.filter(t, pc.equal(txns.column("card_id"), card)).to_numpy()
        assert mine.size > 0 and mine.max() > CFG.end_us - HOUR, card
    burst = pc.filter(t, pc.equal(txns.column("card_id"), "card_12345")).to_numpy()
    assert (burst > CFG.end_us - 5 * MINUTE).sum() >= 5  # a velocity burst right before `end`
    mine = pc.filter(clicks.column("event_timestamp").cast("int64"), pc.equal(clicks.column("user_id"), "user_1001"))
    assert pc.max(mine).as_py() > CFG.end_us - 10 * MINUTE


def test_labelled_fraud_patterns(txns) -> None:
    patterns = set(pc.unique(txns.column("fraud_pattern")).to_pylist()) - {None}
    assert patterns == {"velocity_burst", "geo_hopping", "card_testing"}
    fraud = pc.equal(txns.column("is_fraud"), True)
    assert pc.all(pc.equal(pc.is_valid(txns.column("fraud_pattern")), fraud)).as_py()
    testing = pc.filter(txns, pc.equal(txns.column("fraud_pattern"), "card_testing"))
    assert pc.max(testing.column("amount_cents")).as_py() <= 200


def test_clickstream_page_views_carry_dwell_and_scroll(clicks) -> None:
    pv = pc.equal(clicks.column("event_type"), "page_view")
    assert pc.all(pc.equal(pc.is_valid(clicks.column("dwell_ms")), pv)).as_py()
    assert pc.all(pc.equal(pc.is_valid(clicks.column("scroll_pct")), pv)).as_py()
    assert set(pc.unique(clicks.column("event_type")).to_pylist()) == {"page_view", "click", "add_to_cart", "purchase"}


def test_event_ids_are_unique_across_data_sets(txns) -> None:
    other = generate_transactions(GeneratorConfig(n_cards=400, days=3, seed=11, end_us=CFG.end_us + 1))
    assert not set(txns.column("txn_id").to_pylist()) & set(other.column("txn_id").to_pylist())
