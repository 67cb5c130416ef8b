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
(with dwell time and scroll depth), clicks, cart adds and purchases.

The ids used in the README always exist and have activity in the last hour
before ``end``: ``card_12345`` (owned by ``user_1001``, spending every ~3 hours
over the last day, then a velocity burst ending a minute before ``end``), ``card_67890`` (steady activity over the last
six hours) and ``user_1001`` (a session in progress at ``end``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.parquet_files import write_table
from featurelib.paths import raw_dir, repo_option
from featurelib.raw_events import CLICKSTREAM_SCHEMA, MAX_AMOUNT_CENTS, TRANSACTION_SCHEMA
from featurelib.semantics import HIGH_RISK_MERCHANT_CATEGORIES
from featurelib.timeutil import DAY, HOUR, MINUTE, SECOND, now_us, to_us

SHOWCASE_CARDS = ("card_12345", "card_67890")
SHOWCASE_USER = "user_1001"

MERCHANT_CATEGORIES = {
    # category: (share of merchants, amount multiplier)
    "grocery": (0.20, 0.8),
    "restaurants": (0.16, 0.9),
    "fuel": (0.10, 1.0),
    "retail": (0.14, 1.5),
    "online_services": (0.08, 0.6),
    "travel": (0.05, 6.0),
    "pharmacy": (0.06, 0.7),
    "entertainment": (0.06, 1.2),
    "utilities": (0.03, 2.5),
    "electronics": (0.05, 4.0),
    "gift_cards": (0.03, 2.0),
    "crypto": (0.02, 5.0),
    "money_transfer": (0.01, 4.0),
    "gambling": (0.01, 2.0),
}
COUNTRIES = ("US", "GB", "DE", "FR", "CA", "ES", "IT", "NL", "BR", "IN", "JP", "AU", "MX", "SE", "PL")
COUNTRY_WEIGHTS = (0.40, 0.10, 0.08, 0.07, 0.06, 0.04, 0.04, 0.03, 0.04, 0.04, 0.03, 0.02, 0.02, 0.015, 0.015)
PAGE_CATEGORIES = ("home", "search", "electronics", "fashion", "books", "home_garden", "sports", "beauty", "toys", "checkout")
CLICK_EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase")
# Hour-of-day activity (UTC), relative: quiet at night, busy in the evening.
DIURNAL = np.array([0.2, 0.12, 0.08, 0.06, 0.06, 0.1, 0.25, 0.5, 0.7, 0.8, 0.85, 0.9,
                    1.0, 0.95, 0.9, 0.9, 0.95, 1.0, 1.0, 0.95, 0.85, 0.7, 0.5, 0.3])

@dataclass(frozen=True)
class GeneratorConfig:
    """Sizes and seed of one synthetic data set. Times are epoch microseconds (UTC)."""

    n_cards: int = 5_000
    days: float = 7.0
    end_us: int = field(default_factory=lambda: now_us() // SECOND * SECOND)
    seed: int = 42
    txns_per_card_per_day: float = 2.0
    sessions_per_user_per_day: float = 1.0
    compromised_card_share: float = 0.01
    cards_per_user: float = 1.4

    @property
    def start_us(self) -> int:
        return self.end_us - int(self.days * DAY)

    @property
    def n_users(self) -> int:
        return max(2, int(self.n_cards / self.cards_per_user))

    @property
    def tag(self) -> str:
        """Six hex digits naming this data set in event ids: two data sets never share an
        event id (the pipeline counts an id once), while one data set's ids never change."""
        import hashlib

        fields = (self.n_cards, self.days, self.end_us, self.seed, self.txns_per_card_per_day,
                  self.sessions_per_user_per_day, self.compromised_card_share, self.cards_per_user)
        return hashlib.sha1(repr(fields).encode()).hexdigest()[:6]


@dataclass
class _Population:
    card_ids: np.ndarray  # str, one per card
    card_user: np.ndarray  # user index per card
    card_home_country: np.ndarray  # country index per card
    user_ids: np.ndarray
    user_device_start: np.ndarray  # first device index of each user
    user_device_count: np.ndarray
    device_ids: np.ndarray
    merchant_ids: np.ndarray
    merchant_category: np.ndarray  # category index per merchant
    category_names: np.ndarray
    category_multiplier: np.ndarray


def _ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    return np.char.add(prefix, numbers.astype(str)).astype(object)


def _population(cfg: GeneratorConfig, rng: np.random.Generator) -> _Population:
    n_cards, n_users = cfg.n_cards, cfg.n_users
    card_numbers = np.arange(10_000, 10_000 + n_cards)
    for i, wanted in enumerate((12345, 67890)):
        if wanted not in card_numbers and i < n_cards:
            card_numbers[i] = wanted
    card_user = np.concatenate([np.arange(min(n_users, n_cards)), rng.integers(0, n_users, max(0, n_cards - n_users))])
    # card_12345 belongs to user_1001 (user index 1).
    card_user[np.flatnonzero(card_numbers == 12345)] = 1 if n_users > 1 else 0
    user_device_count = rng.integers(1, 4, n_users)
    user_device_start = np.concatenate([[0], np.cumsum(user_device_count)[:-1]])
    n_devices = int(user_device_count.sum())
    n_merchants = max(50, n_cards // 10)
    names = np.array(list(MERCHANT_CATEGORIES), dtype=object)
    shares = np.array([v[0] for v in MERCHANT_CATEGORIES.values()])
    return _Population(
        card_ids=_ids("card_", card_numbers),
        card_user=card_user,
        card_home_country=rng.choice(len(COUNTRIES), n_cards, p=np.array(COUNTRY_WEIGHTS) / sum(COUNTRY_WEIGHTS)),
        user_ids=_ids("user_", np.arange(1000, 1000 + n_users)),
        user_device_start=user_device_start,
        user_device_count=user_device_count,
        device_ids=_ids("device_", np.arange(100_000, 100_000 + n_devices)),
        merchant_ids=_ids("merchant_", np.arange(n_merchants)),
        merchant_category=rng.choice(len(names), n_merchants, p=shares / shares.sum()),
        category_names=names,
        category_multiplier=np.array([v[1] for v in MERCHANT_CATEGORIES.values()]),
    )


def _diurnal_times(rng: np.random.Generator, n: int, start_us: int, end_us: int) -> np.ndarray:
    """``n`` instants in [start, end) whose hour-of-day follows ``DIURNAL``."""
    out = np.empty(0, dtype=np.int64)
    accept = DIURNAL / DIURNAL.max()
    while out.size < n:
        draw = rng.integers(start_us, end_us, max(2 * (n - out.size), 16), dtype=np.int64)
        keep = rng.random(draw.size) < accept[(draw // HOUR) % 24]
        out = np.concatenate([out, draw[keep]])
    return out[:n]


def _user_devices(pop: _Population, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
    offset = (rng.random(users.size) * pop.user_device_count[users]).astype(np.int64)
    return pop.user_device_start[users] + offset


class _Columns:
    """Accumulates transaction columns from several generators."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, **cols: np.ndarray) -> None:
        for name, values in cols.items():
            self.parts.setdefault(name, []).append(np.asarray(values))

    def concat(self) -> dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.parts.items()}


def _amounts(rng: np.random.Generator, pop: _Population, merchants: np.ndarray, median_cents: float, sigma: float) -> np.ndarray:
    mult = pop.category_multiplier[pop.merchant_category[merchants]]
    cents = rng.lognormal(np.log(median_cents), sigma, merchants.size) * mult
    return np.clip(np.round(cents), 50, min(5_000_000, MAX_AMOUNT_CENTS)).astype(np.int64)


def _merchants_in(rng: np.random.Generator, pop: _Population, categories: set[str], n: int) -> np.ndarray:
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
    pop = _population(cfg, rng)
    cols = _Columns()
    n = _normal_transactions(cfg, rng, pop, cols)
    if progress:
        progress(f"{n:,} normal transactions")
    n_bad, n_rigs, fraud_devices = _fraud_transactions(cfg, rng, pop, cols)
    _showcase_transactions(cfg, rng, pop, cols, fraud_devices)
    table = _transaction_table(cfg, pop, cols, n_rigs, n_bad)
    if progress:
        progress(f"{table.num_rows:,} transactions in all, {pc.sum(table.column('is_fraud')).as_py() or 0:,} labelled fraud")
    return table


def _normal_transactions(cfg: GeneratorConfig, rng: np.random.Generator, pop: _Population, cols: _Columns) -> int:
    """Normal spending: a per-card Poisson rate with a heavy-tailed spread. Returns the count."""
    sigma = 0.8
    rate = cfg.txns_per_card_per_day * rng.lognormal(-sigma**2 / 2, sigma, cfg.n_cards)
    counts = rng.poisson(rate * cfg.days)
    card = np.repeat(np.arange(cfg.n_cards), counts)
    n = card.size
    merchants = rng.integers(0, pop.merchant_ids.size, n)
    travel = rng.random(n) < 0.04
    country = np.where(travel, rng.integers(0, len(COUNTRIES), n), pop.card_home_country[card])
    cols.add(card=card, t=_diurnal_times(rng, n, cfg.start_us, cfg.end_us), merchant=merchants,
             amount=_amounts(rng, pop, merchants, 2_500, 1.1), country=country,
             device=_user_devices(pop, rng, pop.card_user[card]), pattern=np.zeros(n, np.int8))
    return n


def _fraud_transactions(cfg: GeneratorConfig, rng: np.random.Generator, pop: _Population,
                        cols: _Columns) -> tuple[int, int, np.ndarray]:
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
            amount, country, device = _amounts(rng, pop, merchants, 8_000, 0.7), pop.card_home_country[card], fraud_devices[sel][burst]
        elif code == 2:
            merchants = _merchants_in(rng, pop, {"retail", "electronics", "travel", "restaurants"}, m)
            amount = _amounts(rng, pop, merchants, 6_000, 0.8)
            country = (pop.card_home_country[card] + 1 + (np.arange(m) - np.repeat(np.cumsum(sizes) - sizes, sizes))) % len(COUNTRIES)
            device = fraud_devices[sel][burst]
        else:
            merchants = _merchants_in(rng, pop, set(HIGH_RISK_MERCHANT_CATEGORIES), m)
            amount = rng.integers(50, 201, m).astype(np.int64)
            country, device = pop.card_home_country[card], rig_devices[rng.integers(0, n_rigs, sel.size)][burst]
        cols.add(card=card, t=t, merchant=merchants, amount=amount, country=country, device=device,
                 pattern=np.full(m, code, np.int8))
    return n_bad, n_rigs, fraud_devices


def _showcase_transactions(cfg: GeneratorConfig, rng: np.random.Generator, pop: _Population, cols: _Columns,
                           fraud_devices: np.ndarray) -> None:
    """The cards the README examples use: ``card_12345`` spends steadily, then bursts from a new
    device a minute before the end; ``card_67890`` spends every half hour."""
    end = cfg.end_us
    c12345 = np.flatnonzero(pop.card_ids == "card_12345")
    if c12345.size:  # steady spending every ~3 hours over the last day...
        t = end - np.arange(1, 10) * 3 * HOUR + rng.integers(0, 20 * MINUTE, 9)
        merchants = rng.integers(0, pop.merchant_ids.size, t.size)
        cols.add(card=np.repeat(c12345, t.size), t=t, merchant=merchants, amount=_amounts(rng, pop, merchants, 2_500, 0.8),
                 country=np.repeat(pop.card_home_country[c12345], t.size),
                 device=_user_devices(pop, rng, np.repeat(pop.card_user[c12345], t.size)), pattern=np.zeros(t.size, np.int8))
        # ...then a velocity burst from a new device, ending a minute before `end`.
        t = end - MINUTE - np.sort(rng.integers(0, 4 * MINUTE, 9))[::-1]
        merchants = _merchants_in(rng, pop, {"electronics", "gift_cards"}, t.size)
        cols.add(card=np.repeat(c12345, t.size), t=t, merchant=merchants, amount=_amounts(rng, pop, merchants, 9_000, 0.5),
                 country=np.repeat(pop.card_home_country[c12345], t.size), device=np.repeat(fraud_devices[:1], t.size),
                 pattern=np.full(t.size, 1, np.int8))
    c67890 = np.flatnonzero(pop.card_ids == "card_67890")
    if c67890.size:
        t = end - np.arange(1, 13) * 30 * MINUTE + rng.integers(0, 5 * MINUTE, 12)
        merchants = rng.integers(0, pop.merchant_ids.size, t.size)
        cols.add(card=np.repeat(c67890, t.size), t=t, merchant=merchants, amount=_amounts(rng, pop, merchants, 2_500, 0.8),
                 country=np.repeat(pop.card_home_country[c67890], t.size),
                 device=_user_devices(pop, rng, np.repeat(pop.card_user[c67890], t.size)), pattern=np.zeros(t.size, np.int8))


def _transaction_table(cfg: GeneratorConfig, pop: _Population, cols: _Columns, n_rigs: int, n_bad: int) -> pa.Table:
    """The collected transactions inside ``[start, end)``, in time order, as ``TRANSACTION_SCHEMA``."""
    c = cols.concat()
    keep = (c["t"] >= cfg.start_us) & (c["t"] < cfg.end_us)
    order = np.argsort(c["t"][keep], kind="stable")
    c = {k: v[keep][order] for k, v in c.items()}
    n = c["t"].size
    device_ids = np.concatenate([pop.device_ids, _ids("rig_", np.arange(n_rigs)), _ids("device_f", np.arange(n_bad))])
    patterns = pa.array([None, "velocity_burst", "geo_hopping", "card_testing"], pa.string())
    return pa.table({
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
    }, schema=TRANSACTION_SCHEMA)


def _sessions(cfg: GeneratorConfig, rng: np.random.Generator, pop: _Population) -> tuple[np.ndarray, ...]:
    """Browsing sessions: user, start (µs), device, page views and engagement (0 to 1) of each."""
    activity = rng.lognormal(-0.5**2 / 2, 0.5, cfg.n_users)
    n_sessions = rng.poisson(cfg.sessions_per_user_per_day * cfg.days * activity)
    s_user = np.repeat(np.arange(cfg.n_users), n_sessions)
    s_start = _diurnal_times(rng, s_user.size, cfg.start_us, cfg.end_us)
    if cfg.n_users > 1:  # user_1001 is in a session that started nine minutes before `end`.
        s_user = np.append(s_user, 1)
        s_start = np.append(s_start, cfg.end_us - 9 * MINUTE)
    s_device = _user_devices(pop, rng, s_user)
    s_pages = np.minimum(1 + rng.geometric(0.18, s_user.size), 40)
    s_engaged = rng.beta(2, 3, s_user.size)  # per-session engagement in [0, 1]
    return s_user, s_start, s_device, s_pages, s_engaged


def generate_clickstream(cfg: GeneratorConfig, progress: Callable[[str], None] | None = None) -> pa.Table:
    """Clickstream events sorted by ``event_timestamp``, schema ``CLICKSTREAM_SCHEMA``."""
    rng = np.random.default_rng([cfg.seed, 2])
    pop = _population(cfg, np.random.default_rng([cfg.seed, 1]))
    start, end = cfg.start_us, cfg.end_us
    s_user, s_start, s_device, s_pages, s_engaged = _sessions(cfg, rng, pop)
    n_s = s_user.size

    # Page views: consecutive, each lasting its dwell time plus a short gap.
    pv_session = np.repeat(np.arange(n_s), s_pages)
    n_pv = pv_session.size
    dwell = np.clip(rng.lognormal(np.log(8_000 + 40_000 * s_engaged[pv_session]), 0.8), 500, 600_000).astype(np.int64)
    step = dwell * 1_000 + rng.integers(200_000, 3 * SECOND, n_pv)  # µs until the next page view
    first = np.cumsum(s_pages) - s_pages
    cum = np.cumsum(step) - step
    pv_t = s_start[pv_session] + (cum - cum[first][pv_session])
    scroll = np.clip(np.round(rng.beta(1 + 4 * s_engaged[pv_session], 2, n_pv) * 100), 0, 100).astype(np.int64)
    page_cat = rng.integers(0, len(PAGE_CATEGORIES) - 1, n_pv)

    # Clicks, cart adds and purchases hang off page views.
    n_clicks = rng.poisson(0.3 + 1.5 * s_engaged[pv_session])
    ck_pv = np.repeat(np.arange(n_pv), n_clicks)
    ck_t = pv_t[ck_pv] + (rng.random(ck_pv.size) * dwell[ck_pv] * 1_000).astype(np.int64)
    cart = rng.random(n_pv) < 0.02 + 0.2 * s_engaged[pv_session] ** 2
    ca_pv = np.flatnonzero(cart)
    ca_t = pv_t[ca_pv] + (0.8 * dwell[ca_pv] * 1_000).astype(np.int64)
    s_has_cart = np.bincount(pv_session[ca_pv], minlength=n_s) > 0
    last_pv = first + s_pages - 1
    buys = np.flatnonzero(s_has_cart & (rng.random(n_s) < 0.45))
    pu_pv = last_pv[buys]
    pu_t = pv_t[pu_pv] + dwell[pu_pv] * 1_000 + 20 * SECOND

    ev_pv = np.concatenate([np.arange(n_pv), ck_pv, ca_pv, pu_pv])
    ev_type = np.concatenate([np.zeros(n_pv, np.int64), np.ones(ck_pv.size, np.int64),
                              np.full(ca_pv.size, 2, np.int64), np.full(pu_pv.size, 3, np.int64)])
    ev_t = np.concatenate([pv_t, ck_t, ca_t, pu_t])
    keep = (ev_t >= start) & (ev_t < end)
    order = np.lexsort((ev_type[keep], ev_t[keep]))
    ev_pv, ev_type, ev_t = ev_pv[keep][order], ev_type[keep][order], ev_t[keep][order]
    is_pv = ev_type == 0
    sess = pv_session[ev_pv]
    n = ev_t.size
    page_names = np.array(PAGE_CATEGORIES, dtype=object)
    table = pa.table({
        "event_id": pc.binary_join_element_wise(f"click_{cfg.tag}_", pc.cast(pa.array(np.arange(n)), pa.string()), ""),
        "user_id": pa.array(pop.user_ids[s_user[sess]], pa.string()),
        "session_id": pa.array(_ids("session_", 1_000_000 + sess), pa.string()),
        "device_id": pa.array(pop.device_ids[s_device[sess]], pa.string()),
        "event_type": pc.take(pa.array(CLICK_EVENT_TYPES), pa.array(ev_type)),
        "page_category": pa.array(np.where(ev_type == 3, "checkout", page_names[page_cat[ev_pv]]), pa.string()),
        "dwell_ms": pa.array(dwell[ev_pv], pa.int64(), mask=~is_pv),
        "scroll_pct": pa.array(scroll[ev_pv], pa.int64(), mask=~is_pv),
        "event_timestamp": pa.array(ev_t, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    }, schema=CLICKSTREAM_SCHEMA)
    if progress:
        progress(f"{n:,} clickstream events in {n_s:,} sessions")
    return table


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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write here instead of <repo>/data/raw (e.g. data/replay, for a stream replay).")
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
