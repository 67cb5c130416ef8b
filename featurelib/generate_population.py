"""The synthetic data set's shape and actors, shared by both event generators: ``GeneratorConfig``
(seed, sizes, end time), the population of cards, users, devices and merchants the events are
drawn from, and the diurnal clock of activity.

The population depends only on the config: the transaction generator (``featurelib.generate``)
and the clickstream generator (``featurelib.generate_clickstream``) rebuild the same one from
the same seed, so a user's devices and cards agree across both event sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featurelib.timeutil import DAY, HOUR, SECOND, now_us

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
# Hour-of-day activity (UTC), relative: quiet at night, busy in the evening.
DIURNAL = np.array(
    [
        0.2,
        0.12,
        0.08,
        0.06,
        0.06,
        0.1,
        0.25,
        0.5,
        0.7,
        0.8,
        0.85,
        0.9,
        1.0,
        0.95,
        0.9,
        0.9,
        0.95,
        1.0,
        1.0,
        0.95,
        0.85,
        0.7,
        0.5,
        0.3,
    ]
)


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

        fields = (
            self.n_cards,
            self.days,
            self.end_us,
            self.seed,
            self.txns_per_card_per_day,
            self.sessions_per_user_per_day,
            self.compromised_card_share,
            self.cards_per_user,
        )
        return hashlib.sha1(repr(fields).encode()).hexdigest()[:6]


@dataclass
class Population:
    """The cards, users, devices and merchants of a data set: ids, and indices into them."""

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


def prefixed_ids(prefix: str, numbers: np.ndarray) -> np.ndarray:
    """``prefix`` followed by each number, as an object array of Python strings."""
    return np.char.add(prefix, numbers.astype(str)).astype(object)


def population(cfg: GeneratorConfig, rng: np.random.Generator) -> Population:
    """The data set's actors; ``card_12345`` (owned by ``user_1001``) and ``card_67890`` always exist."""
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
    return Population(
        card_ids=prefixed_ids("card_", card_numbers),
        card_user=card_user,
        card_home_country=rng.choice(len(COUNTRIES), n_cards, p=np.array(COUNTRY_WEIGHTS) / sum(COUNTRY_WEIGHTS)),
        user_ids=prefixed_ids("user_", np.arange(1000, 1000 + n_users)),
        user_device_start=user_device_start,
        user_device_count=user_device_count,
        device_ids=prefixed_ids("device_", np.arange(100_000, 100_000 + n_devices)),
        merchant_ids=prefixed_ids("merchant_", np.arange(n_merchants)),
        merchant_category=rng.choice(len(names), n_merchants, p=shares / shares.sum()),
        category_names=names,
        category_multiplier=np.array([v[1] for v in MERCHANT_CATEGORIES.values()]),
    )


def diurnal_times(rng: np.random.Generator, n: int, start_us: int, end_us: int) -> np.ndarray:
    """``n`` instants in [start, end) whose hour-of-day follows ``DIURNAL``."""
    out = np.empty(0, dtype=np.int64)
    accept = DIURNAL / DIURNAL.max()
    while out.size < n:
        draw = rng.integers(start_us, end_us, max(2 * (n - out.size), 16), dtype=np.int64)
        keep = rng.random(draw.size) < accept[(draw // HOUR) % 24]
        out = np.concatenate([out, draw[keep]])
    return out[:n]


def user_devices(pop: Population, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
    """One of its own devices (an index into ``device_ids``) for each user of ``users``."""
    offset = (rng.random(users.size) * pop.user_device_count[users]).astype(np.int64)
    return pop.user_device_start[users] + offset
