"""Seeded synthetic clickstream events, the second raw event set of ``featurelib.generate``.

Sessions of users on their devices (from the population both generators share,
``featurelib.generate_population``), each a run of consecutive page views (with dwell time and
scroll depth) off which clicks, cart adds and purchases hang. ``user_1001`` is in a session that
started nine minutes before ``end``. The same ``GeneratorConfig`` always yields the same events.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurelib.generate_population import (
    GeneratorConfig,
    Population,
    diurnal_times,
    population,
    prefixed_ids,
    user_devices,
)
from featurelib.raw_events import CLICKSTREAM_SCHEMA
from featurelib.timeutil import MINUTE, SECOND

PAGE_CATEGORIES = (
    "home",
    "search",
    "electronics",
    "fashion",
    "books",
    "home_garden",
    "sports",
    "beauty",
    "toys",
    "checkout",
)
CLICK_EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase")


def _sessions(cfg: GeneratorConfig, rng: np.random.Generator, pop: Population) -> tuple[np.ndarray, ...]:
    """Browsing sessions: user, start (µs), device, page views and engagement (0 to 1) of each."""
    activity = rng.lognormal(-(0.5**2) / 2, 0.5, cfg.n_users)
    n_sessions = rng.poisson(cfg.sessions_per_user_per_day * cfg.days * activity)
    s_user = np.repeat(np.arange(cfg.n_users), n_sessions)
    s_start = diurnal_times(rng, s_user.size, cfg.start_us, cfg.end_us)
    if cfg.n_users > 1:  # user_1001 is in a session that started nine minutes before `end`.
        s_user = np.append(s_user, 1)
        s_start = np.append(s_start, cfg.end_us - 9 * MINUTE)
    s_device = user_devices(pop, rng, s_user)
    s_pages = np.minimum(1 + rng.geometric(0.18, s_user.size), 40)
    s_engaged = rng.beta(2, 3, s_user.size)  # per-session engagement in [0, 1]
    return s_user, s_start, s_device, s_pages, s_engaged


def _page_views(
    rng: np.random.Generator, s_start: np.ndarray, s_pages: np.ndarray, s_engaged: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Page views, consecutive in each session, each lasting its dwell time plus a short gap:
    session, time (µs), dwell (ms), scroll depth and page category of each, and the first page
    view of each session."""
    pv_session = np.repeat(np.arange(s_pages.size), s_pages)
    n_pv = pv_session.size
    dwell = np.clip(rng.lognormal(np.log(8_000 + 40_000 * s_engaged[pv_session]), 0.8), 500, 600_000).astype(np.int64)
    step = dwell * 1_000 + rng.integers(200_000, 3 * SECOND, n_pv)  # µs until the next page view
    first = np.cumsum(s_pages) - s_pages
    cum = np.cumsum(step) - step
    pv_t = s_start[pv_session] + (cum - cum[first][pv_session])
    scroll = np.clip(np.round(rng.beta(1 + 4 * s_engaged[pv_session], 2, n_pv) * 100), 0, 100).astype(np.int64)
    page_cat = rng.integers(0, len(PAGE_CATEGORIES) - 1, n_pv)
    return pv_session, pv_t, dwell, scroll, page_cat, first


def _events(
    rng: np.random.Generator,
    cfg: GeneratorConfig,
    page_views: tuple[np.ndarray, ...],
    s_pages: np.ndarray,
    s_engaged: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every event inside ``[start, end)`` in time order: its page view, type (an index into
    ``CLICK_EVENT_TYPES``) and time. Clicks, cart adds and purchases hang off page views."""
    pv_session, pv_t, dwell, _, _, first = page_views
    n_s, n_pv = s_pages.size, pv_session.size
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
    ev_type = np.concatenate(
        [
            np.zeros(n_pv, np.int64),
            np.ones(ck_pv.size, np.int64),
            np.full(ca_pv.size, 2, np.int64),
            np.full(pu_pv.size, 3, np.int64),
        ]
    )
    ev_t = np.concatenate([pv_t, ck_t, ca_t, pu_t])
    keep = (ev_t >= cfg.start_us) & (ev_t < cfg.end_us)
    order = np.lexsort((ev_type[keep], ev_t[keep]))
    return ev_pv[keep][order], ev_type[keep][order], ev_t[keep][order]


def generate_clickstream(cfg: GeneratorConfig, progress: Callable[[str], None] | None = None) -> pa.Table:
    """Clickstream events sorted by ``event_timestamp``, schema ``CLICKSTREAM_SCHEMA``."""
    rng = np.random.default_rng([cfg.seed, 2])
    pop = population(cfg, np.random.default_rng([cfg.seed, 1]))
    s_user, s_start, s_device, s_pages, s_engaged = _sessions(cfg, rng, pop)
    page_views = _page_views(rng, s_start, s_pages, s_engaged)
    pv_session, _, dwell, scroll, page_cat, _ = page_views
    ev_pv, ev_type, ev_t = _events(rng, cfg, page_views, s_pages, s_engaged)
    is_pv = ev_type == 0
    sess = pv_session[ev_pv]
    n = ev_t.size
    page_names = np.array(PAGE_CATEGORIES, dtype=object)
    table = pa.table(
        {
            "event_id": pc.binary_join_element_wise(
                f"click_{cfg.tag}_", pc.cast(pa.array(np.arange(n)), pa.string()), ""
            ),
            "user_id": pa.array(pop.user_ids[s_user[sess]], pa.string()),
            "session_id": pa.array(prefixed_ids("session_", 1_000_000 + sess), pa.string()),
            "device_id": pa.array(pop.device_ids[s_device[sess]], pa.string()),
            "event_type": pc.take(pa.array(CLICK_EVENT_TYPES), pa.array(ev_type)),
            "page_category": pa.array(np.where(ev_type == 3, "checkout", page_names[page_cat[ev_pv]]), pa.string()),
            "dwell_ms": pa.array(dwell[ev_pv], pa.int64(), mask=~is_pv),
            "scroll_pct": pa.array(scroll[ev_pv], pa.int64(), mask=~is_pv),
            "event_timestamp": pa.array(ev_t, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        },
        schema=CLICKSTREAM_SCHEMA,
    )
    if progress:
        progress(f"{n:,} clickstream events in {s_user.size:,} sessions")
    return table
