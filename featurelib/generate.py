"""Seeded synthetic raw events: card transactions and clickstream sessions.

The generator is vectorized numpy: 10 million transactions take seconds, not
minutes. The same ``GeneratorConfig`` (seed, sizes, end time) always yields the
same events, byte for byte.

Transactions come from cards owned by users, paid on the users' devices at
merchants with a category (some categories are high risk) in a country. Amounts
are heavy-tailed (log-normal, in integer cents). A small share of cards is
compromised and carries labelled fraud patterns:

* ``velocity_burst``: 8-20 purchases within 2-10 minutes from a new device;
* ``geo_hopping``: 3-6 purchases from different countries within an hour;
* ``card_testing``: 10-40 purchases of 0.50-2.00 at high-risk merchants within
  minutes, from a small pool of testing rigs shared across many cards.

Clickstream events belong to sessions of users on their devices: page views
(with dwell time and scroll depth), clicks, cart adds and purchases
(``featurelib.generate_clickstream``). Both event sets draw from one population of
cards, users, devices and merchants (``featurelib.generate_population``).

This module generates the transactions and writes both event sets (``generate``,
``python -m featurelib.generate``).

The ids used in the README always exist and have activity in the last hour
before ``end``: ``card_12345`` (owned by ``user_1001``, spending every ~3 hours
over the last day, then a velocity burst ending a minute before ``end``), ``card_67890`` (steady activity over the last
six hours) and ``user_1001`` (a session in progress at ``end``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.generate_clickstream import generate_clickstream
from featurelib.generate_population import (
    COUNTRIES,
    GeneratorConfig,
    Population,
    diurnal_times,
    population,
    prefixed_ids,
    user_devices,
)
from featurelib.parquet_files import write_table
from featurelib.paths import raw_dir, repo_option
from featurelib.raw_events import (  # CLICKSTREAM_SCHEMA: re-exported, tests import it from here
    CLICKSTREAM_SCHEMA,  # noqa: F401
    MAX_AMOUNT_CENTS,
    TRANSACTION_SCHEMA,
)
from featurelib.semantics import HIGH_RISK_MERCHANT_CATEGORIES
from featurelib.timeutil import HOUR, MINUTE, to_us

SHOWCASE_CARDS = ("card_12345", "card_67890")
SHOWCASE_USER = "user_1001"


class _Columns:
    """Accumulates transaction columns from several generators."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, **cols: np.ndarray) -> None:
        for name, values in cols.items():
            self.parts.setdefault(name, []).append(np.asarray(values))

    def concat(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.parts.items()}


def _amounts(
    rng: np.random.Generator, pop: Population, merchants: np.ndarray, median_cents: float, sigma: float
) -> np.ndarray:
    mult = pop.category_multiplier[pop.merchant_category[merchants]]
    cents = rng.lognormal(np.log(median_cents), sigma, merchants.size) * mult
    return np.clip(np.round(cents), 50, min(5_000_000, MAX_AMOUNT_CENTS)).astype(np.int64)


def _merchants_in(rng: np.random.Generator, pop: Population, categories: set[str], n: int) -> np.ndarray:
    wanted = np.flatnonzero(np.isin(pop.category_names[pop.merchant_category], list(categories)))
    if wanted.size == 0:
        wanted = np.arange(pop.merchant_ids.size)
    return rng.choice(wanted, n)


def _bursts(rng: np.random.Generator, cards: np.ndarray, starts: np.ndarray, sizes: np.ndarray, spans: np.ndarray):
    """Expand bursts (card, start, size, span) into per-transaction card and time arrays."""
    card = np.repeat(cards, sizes)
    start = np.repeat(starts, sizes)
    span = np.repeat(spans, sizes)
    t = start + (rng.random(card.size) * span).astype(np.int64)
    return card, t, np.repeat(np.arange(cards.size), sizes)


def generate_transactions(cfg: GeneratorConfig, progress: Callable[[str], None] | None = None) -> pa.Table:
    """Card transactions sorted by ``event_timestamp``, schema ``TRANSACTION_SCHEMA``."""
    rng = np.random.default_rng([cfg.seed, 1])
    pop = population(cfg, rng)
    cols = _Columns()
    n = _normal_transactions(cfg, rng, pop, cols)
    if progress:
        progress(f"{n:,} normal transactions")
    n_bad, n_rigs, fraud_devices = _fraud_transactions(cfg, rng, pop, cols)
    _showcase_transactions(cfg, rng, pop, cols, fraud_devices)
    table = _transaction_table(cfg, pop, cols, n_rigs, n_bad)
    if progress:
        progress(
            f"{table.num_rows:,} transactions in all, {pc.sum(table.column('is_fraud')).as_py() or 0:,} labelled fraud"
        )
    return table


def _normal_transactions(cfg: GeneratorConfig, rng: np.random.Generator, pop: Population, cols: _Columns) -> int:
    """Normal spending: a per-card Poisson rate with a heavy-tailed spread. Returns the count."""
    sigma = 0.8
    rate = cfg.txns_per_card_per_day * rng.lognormal(-(sigma**2) / 2, sigma, cfg.n_cards)
    counts = rng.poisson(rate * cfg.days)
    card = np.repeat(np.arange(cfg.n_cards), counts)
    n = card.size
    merchants = rng.integers(0, pop.merchant_ids.size, n)
    travel = rng.random(n) < 0.04
    country = np.where(travel, rng.integers(0, len(COUNTRIES), n), pop.card_home_country[card])
    cols.add(
        card=card,
        t=diurnal_times(rng, n, cfg.start_us, cfg.end_us),
        merchant=merchants,
        amount=_amounts(rng, pop, merchants, 2_500, 1.1),
        country=country,
        device=user_devices(pop, rng, pop.card_user[card]),
        pattern=np.zeros(n, np.int8),
    )
    return n


def _fraud_transactions(
    cfg: GeneratorConfig, rng: np.random.Generator, pop: Population, cols: _Columns
) -> tuple[int, int, np.ndarray]:
    """Fraud on compromised cards: velocity bursts, geo hopping, card testing from shared rigs.
    Returns the number of compromised cards, of rigs, and the fraud device of each card."""
    start, end = cfg.start_us, cfg.end_us
    n_bad = max(1, int(cfg.n_cards * cfg.compromised_card_share))
    bad_cards = rng.choice(cfg.n_cards, n_bad, replace=False)
    kind = rng.integers(1, 4, n_bad)  # 1 velocity_burst, 2 geo_hopping, 3 card_testing
    window_end = max(start + 1, end - HOUR)
    n_rigs = max(1, n_bad // 20)
    rig_devices = np.arange(n_rigs) + pop.device_ids.size  # new devices, appended below
    fraud_devices = np.arange(n_bad) + pop.device_ids.size + n_rigs
    for code, (lo, hi), (span_lo, span_hi) in (
        (1, (8, 21), (2 * MINUTE, 10 * MINUTE)),
        (2, (3, 7), (20 * MINUTE, 60 * MINUTE)),
        (3, (10, 41), (1 * MINUTE, 6 * MINUTE)),
    ):
        sel = np.flatnonzero(kind == code)
        if sel.size == 0:
            continue
        sizes = rng.integers(lo, hi, sel.size)
        starts = rng.integers(start, window_end, sel.size)
        spans = rng.integers(span_lo, span_hi, sel.size)
        card, t, burst = _bursts(rng, bad_cards[sel], starts, sizes, spans)
        m = card.size
        if code == 1:
            merchants = _merchants_in(rng, pop, {"electronics", "online_services", "retail", "gift_cards"}, m)
            amount, country, device = (
                _amounts(rng, pop, merchants, 8_000, 0.7),
                pop.card_home_country[card],
                fraud_devices[sel][burst],
            )
        elif code == 2:
            merchants = _merchants_in(rng, pop, {"retail", "electronics", "travel", "restaurants"}, m)
            amount = _amounts(rng, pop, merchants, 6_000, 0.8)
            country = (
                pop.card_home_country[card] + 1 + (np.arange(m) - np.repeat(np.cumsum(sizes) - sizes, sizes))
            ) % len(COUNTRIES)
            device = fraud_devices[sel][burst]
        else:
            merchants = _merchants_in(rng, pop, set(HIGH_RISK_MERCHANT_CATEGORIES), m)
            amount = rng.integers(50, 201, m).astype(np.int64)
            country, device = pop.card_home_country[card], rig_devices[rng.integers(0, n_rigs, sel.size)][burst]
        cols.add(
            card=card,
            t=t,
            merchant=merchants,
            amount=amount,
            country=country,
            device=device,
            pattern=np.full(m, code, np.int8),
        )
    return n_bad, n_rigs, fraud_devices


def _showcase_transactions(
    cfg: GeneratorConfig, rng: np.random.Generator, pop: Population, cols: _Columns, fraud_devices: np.ndarray
) -> None:
    """The cards the README examples use: ``card_12345`` spends steadily, then bursts from a new
    device a minute before the end; ``card_67890`` spends every half hour."""
    end = cfg.end_us
    c12345 = np.flatnonzero(pop.card_ids == "card_12345")
    if c12345.size:  # steady spending every ~3 hours over the last day...
        t = end - np.arange(1, 10) * 3 * HOUR + rng.integers(0, 20 * MINUTE, 9)
        merchants = rng.integers(0, pop.merchant_ids.size, t.size)
        cols.add(
            card=np.repeat(c12345, t.size),
            t=t,
            merchant=merchants,
            amount=_amounts(rng, pop, merchants, 2_500, 0.8),
            country=np.repeat(pop.card_home_country[c12345], t.size),
            device=user_devices(pop, rng, np.repeat(pop.card_user[c12345], t.size)),
            pattern=np.zeros(t.size, np.int8),
        )
        # ...then a velocity burst from a new device, ending a minute before `end`.
        t = end - MINUTE - np.sort(rng.integers(0, 4 * MINUTE, 9))[::-1]
        merchants = _merchants_in(rng, pop, {"electronics", "gift_cards"}, t.size)
        cols.add(
            card=np.repeat(c12345, t.size),
            t=t,
            merchant=merchants,
            amount=_amounts(rng, pop, merchants, 9_000, 0.5),
            country=np.repeat(pop.card_home_country[c12345], t.size),
            device=np.repeat(fraud_devices[:1], t.size),
            pattern=np.full(t.size, 1, np.int8),
        )
    c67890 = np.flatnonzero(pop.card_ids == "card_67890")
    if c67890.size:
        t = end - np.arange(1, 13) * 30 * MINUTE + rng.integers(0, 5 * MINUTE, 12)
        merchants = rng.integers(0, pop.merchant_ids.size, t.size)
        cols.add(
            card=np.repeat(c67890, t.size),
            t=t,
            merchant=merchants,
            amount=_amounts(rng, pop, merchants, 2_500, 0.8),
            country=np.repeat(pop.card_home_country[c67890], t.size),
            device=user_devices(pop, rng, np.repeat(pop.card_user[c67890], t.size)),
            pattern=np.zeros(t.size, np.int8),
        )


def _transaction_table(cfg: GeneratorConfig, pop: Population, cols: _Columns, n_rigs: int, n_bad: int) -> pa.Table:
    """The collected transactions inside ``[start, end)``, in time order, as ``TRANSACTION_SCHEMA``."""
    c = cols.concat()
    keep = (c["t"] >= cfg.start_us) & (c["t"] < cfg.end_us)
    order = np.argsort(c["t"][keep], kind="stable")
    c = {k: v[keep][order] for k, v in c.items()}
    n = c["t"].size
    device_ids = np.concatenate(
        [pop.device_ids, prefixed_ids("rig_", np.arange(n_rigs)), prefixed_ids("device_f", np.arange(n_bad))]
    )
    patterns = pa.array([None, "velocity_burst", "geo_hopping", "card_testing"], pa.string())
    return pa.table(
        {
            "txn_id": pc.binary_join_element_wise(f"txn_{cfg.tag}_", pc.cast(pa.array(np.arange(n)), pa.string()), ""),
            "card_id": pa.array(pop.card_ids[c["card"]], pa.string()),
            "user_id": pa.array(pop.user_ids[pop.card_user[c["card"]]], pa.string()),
            "device_id": pa.array(device_ids[c["device"]], pa.string()),
            "merchant_id": pa.array(pop.merchant_ids[c["merchant"]], pa.string()),
            "merchant_category": pa.array(pop.category_names[pop.merchant_category[c["merchant"]]], pa.string()),
            "country": pa.array(np.array(COUNTRIES, dtype=object)[c["country"]], pa.string()),
            "amount_cents": pa.array(c["amount"], pa.int64()),
            "event_timestamp": pa.array(c["t"], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "is_fraud": pa.array(c["pattern"] > 0),
            "fraud_pattern": pc.take(patterns, pa.array(c["pattern"].astype(np.int64))),
        },
        schema=TRANSACTION_SCHEMA,
    )


def generate(cfg: GeneratorConfig, raw_dir: Path, progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Generate both event sets into ``raw_dir/{transactions,clickstream}/generated.parquet``.

    Re-running replaces the generated files; nothing is appended twice.
    """
    out = {
        "transactions": raw_dir / "transactions" / "generated.parquet",
        "clickstream": raw_dir / "clickstream" / "generated.parquet",
    }
    write_table(generate_transactions(cfg, progress), out["transactions"])
    write_table(generate_clickstream(cfg, progress), out["clickstream"])
    return out


@click.command()
@repo_option("Feature repository; events go to its data/raw.")
@click.option("--cards", default=5_000, show_default=True, help="Number of cards (users = cards / 1.4).")
@click.option("--days", default=7.0, show_default=True, help="Days of history.")
@click.option("--end", default=None, help="Last instant (ISO-8601, UTC). Default: now.")
@click.option("--seed", default=42, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write here instead of <repo>/data/raw (e.g. data/replay, for a stream replay).",
)
def main(repo: Path, cards: int, days: float, end: str | None, seed: int, out: Path | None) -> None:
    """Generate seeded synthetic transactions and clickstream events into data/raw.

    Replaces data/raw/{transactions,clickstream}/generated.parquet; other partitions
    (events landed by a stream) are left alone.
    """
    cfg = GeneratorConfig(n_cards=cards, days=days, seed=seed, **({"end_us": to_us(end)} if end else {}))
    for kind, path in generate(cfg, out or raw_dir(repo), progress=click.echo).items():
        click.echo(f"{kind}: {path}")


if __name__ == "__main__":
    main()
