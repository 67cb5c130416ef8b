"""Decoding stream entries (featurelib.stream.events): every rule of the raw-event schema, the
entries that break one kept exactly as received, and large reads decoded like small ones.

Three ways to decode, chosen by the size of a read: grouped by field layout (1,000 entries
and more), a dict per entry into Arrow columns (``SMALL_READ`` to 999), and plain Python
(fewer than ``SMALL_READ``, a live step)."""

from __future__ import annotations

import random

import pytest

from featurelib.raw_events import MAX_AHEAD_US, MAX_AMOUNT_CENTS, REQUIRED, SCHEMAS
from featurelib.stream import events
from featurelib.stream.events import decode

ARRIVAL_MS = 1_795_694_400_000  # 2026-11-26T10:00:00Z
T = ARRIVAL_MS * 1000 - 5_000_000  # 5 s before the first arrival


def valid_fields(kind: str, i: int, t_us: int = T) -> dict[bytes, bytes]:
    """A valid event of ``kind`` (its optional fields present)."""
    if kind == "transactions":
        fields = {"txn_id": f"t{i}", "card_id": f"card_{i % 5}", "user_id": "user_1", "device_id": "device_1",
                  "merchant_id": "merchant_1", "merchant_category": "grocery", "country": "US",
                  "amount_cents": str(100 + i), "event_timestamp": str(t_us), "is_fraud": "false",
                  "fraud_pattern": "none"}
    else:
        fields = {"event_id": f"e{i}", "user_id": f"user_{i % 3}", "session_id": "s1", "device_id": "device_1",
                  "event_type": "page_view", "page_category": "books", "dwell_ms": "1200", "scroll_pct": "55",
                  "event_timestamp": str(t_us)}
    return {k.encode(): v.encode() for k, v in fields.items()}


def entry(i: int, fields: dict[bytes, bytes] | list[bytes], arrival_ms: int = ARRIVAL_MS) -> tuple[bytes, list[bytes]]:
    flat = fields if isinstance(fields, list) else [x for kv in fields.items() for x in kv]
    return f"{arrival_ms + i}-0".encode(), flat


# Each rule: how to break a valid transaction (as its flat field list), and the reason given.
def _with(name: str, value: bytes):
    return lambda f: [x for k, v in {**f, name.encode(): value}.items() for x in (k, v)]


def _without(name: str):
    return lambda f: [x for k, v in f.items() if k != name.encode() for x in (k, v)]


BROKEN = {
    "not utf-8": (_with("card_id", b"c\xff"), "card_id is not UTF-8 text"),
    "name not utf-8": (lambda f: [*_without("fraud_pattern")(f), b"fr\xffaud", b"x"], "unknown field 'fr\\xffaud'"),
    "unknown field": (lambda f: [*_with("amount_cents", b"5")(f), b"amount", b"5"], "unknown field 'amount'"),
    "field twice": (lambda f: [*_with("country", b"US")(f), b"country", b"FR"], "field 'country' given twice"),
    "missing": (_without("card_id"), "missing card_id"),
    "empty": (_with("merchant_id", b""), "merchant_id is empty"),
    "too long": (_with("device_id", b"d" * 257), "device_id is longer than 256 characters (257)"),
    "not an integer": (_with("amount_cents", b"12.50"), "amount_cents is not a valid int64"),
    "19 digits": (_with("amount_cents", b"1" * 19), "amount_cents is not a valid int64"),
    "not a boolean": (_with("is_fraud", b"yes"), "is_fraud is not a valid bool"),
    "negative amount": (_with("amount_cents", b"-1"), "amount_cents -1 is below its minimum 0"),
    "amount too large": (_with("amount_cents", str(MAX_AMOUNT_CENTS + 1).encode()),
                         f"amount_cents {MAX_AMOUNT_CENTS + 1:,} is above its maximum {MAX_AMOUNT_CENTS:,}"),
    "before 2000": (_with("event_timestamp", b"946684799999999"), "event_timestamp 1999-12-31T23:59:59.999999Z is before"),
    "in a year": (_with("event_timestamp", str(T + 365 * 86_400_000_000).encode()), "s ahead of the clock (at most 60 s"),
}


@pytest.mark.parametrize("size", [3, events.SMALL_READ, 1_000], ids=["python", "columns", "layouts"])
@pytest.mark.parametrize("rule", list(BROKEN))
def test_an_entry_breaking_a_rule_is_set_aside_exactly_as_received(rule: str, size: int) -> None:
    """Whatever the size of the read, the broken entry is returned with its fields byte for
    byte and its reason, and the valid entries around it decode."""
    break_it, reason = BROKEN[rule]
    entries = [entry(i, valid_fields("transactions", i)) for i in range(size)]
    bad = size // 2
    entries[bad] = entry(bad, break_it(valid_fields("transactions", bad)))
    decoded = decode("transactions", entries)
    assert decoded.invalid_ids == [entries[bad][0]]
    row = decoded.invalid.to_pylist()[0]
    assert reason in row["reason"]
    flat = entries[bad][1]
    assert [(f["name"], f["value"]) for f in row["fields"]] == list(zip(flat[0::2], flat[1::2]))
    assert decoded.events.column("txn_id").to_pylist() == [f"t{i}" for i in range(size) if i != bad]
    assert decoded.event_ids == [e[0] for i, e in enumerate(entries) if i != bad]


@pytest.mark.parametrize("kind", ["transactions", "clickstream"])
def test_clickstream_and_transaction_ranges(kind: str) -> None:
    cases = {"transactions": [(b"amount_cents", b"0", None), (b"amount_cents", str(MAX_AMOUNT_CENTS).encode(), None)],
             "clickstream": [(b"scroll_pct", b"0", None), (b"scroll_pct", b"100", None),
                             (b"scroll_pct", b"1000", "scroll_pct 1,000 is above its maximum 100"),
                             (b"dwell_ms", b"-5", "dwell_ms -5 is below its minimum 0"),
                             (b"dwell_ms", b"86400000", None),
                             (b"dwell_ms", b"86400001", "dwell_ms 86,400,001 is above its maximum 86,400,000")]}[kind]
    entries = [entry(i, {**valid_fields(kind, i), name: value}) for i, (name, value, _) in enumerate(cases)]
    decoded = decode(kind, entries)
    reasons = dict(zip(decoded.invalid_ids, decoded.invalid.column("reason").to_pylist()))
    assert [reasons.get(e[0]) for e in entries] == [r for _, _, r in cases]


def test_an_event_may_be_stamped_at_most_60_s_after_its_arrival() -> None:
    arrival_us = ARRIVAL_MS * 1000
    entries = [entry(0, valid_fields("transactions", 0, arrival_us + MAX_AHEAD_US)),
               entry(0, valid_fields("transactions", 1, arrival_us + MAX_AHEAD_US + 1))]
    decoded = decode("transactions", entries)
    assert decoded.events.column("txn_id").to_pylist() == ["t0"]
    assert decoded.invalid.column("reason")[0].as_py().endswith("is 60.0 s ahead of the clock (at most 60 s allowed)")


def _mixed_entries(seed: int, kind: str, n: int) -> list:
    """Valid entries with shuffled field orders and optional fields left out, and entries broken
    by every rule, as flat lists the way Redis sends them."""
    rng = random.Random(seed)
    optional = [f.name.encode() for f in SCHEMAS[kind] if f.name not in REQUIRED[kind]]
    out = []
    for i in range(n):
        fields = valid_fields(kind, i, T + rng.randrange(-10**9, 10**6))
        if rng.random() < 0.3:
            fields.pop(rng.choice(optional))
        names = list(fields)
        if rng.random() < 0.1:
            rng.shuffle(names)
        flat = [x for name in names for x in (name, fields[name])]
        if kind == "transactions" and rng.random() < 0.1:
            flat = BROKEN[rng.choice(list(BROKEN))][0](fields)
        out.append(entry(i, flat))
    return out


@pytest.mark.parametrize("kind", ["transactions", "clickstream"])
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("size", [500, events.SMALL_READ - 1, 7])
def test_large_reads_decode_like_small_ones(kind: str, seed: int, size: int) -> None:
    entries = _mixed_entries(seed, kind, 2_500)
    large = decode(kind, entries)  # grouped by layout
    small = [decode(kind, entries[i:i + size]) for i in range(0, len(entries), size)]
    assert large.events.num_rows > 2_000
    assert kind == "clickstream" or large.invalid.num_rows > 100
    assert large.events.to_pylist() == [row for d in small for row in d.events.to_pylist()]
    assert large.event_ids == [i for d in small for i in d.event_ids]
    assert large.invalid_ids == [i for d in small for i in d.invalid_ids]
    assert large.invalid.to_pylist() == [row for d in small for row in d.invalid.to_pylist()]
    assert large.arrival_us.tolist() == [a for d in small for a in d.arrival_us.tolist()]
    assert large.events.schema == SCHEMAS[kind] and large.invalid.schema == events.INVALID_SCHEMA


def test_dict_entries_decode_like_flat_ones() -> None:
    """redis-py's default XREADGROUP parsing gives dicts; the processor asks for flat lists."""
    flat = _mixed_entries(1, "transactions", 300)
    as_dicts = [(i, dict(zip(f[0::2], f[1::2]))) for i, f in flat if len(set(f[0::2])) == len(f[0::2])]
    as_flat = [(i, [x for kv in d.items() for x in kv]) for i, d in as_dicts]
    assert decode("transactions", as_dicts).events.equals(decode("transactions", as_flat).events)
