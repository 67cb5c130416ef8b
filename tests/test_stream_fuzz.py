"""Property test: no stream entry can stop or poison a real processor.

Thousands of entries drawn by hypothesis (valid events with arbitrary Unicode ids and any
allowed value, and entries broken by every rule of the raw-event schema: bytes that are not
UTF-8, unknown, repeated and missing fields, wrong types, values out of range, timestamps in
the future or before 2000) are XADDed, exactly as drawn, to a real redis-server read by a
real ``python -m featurelib.stream run``. After each batch the processor is still running,
every entry is acknowledged, every valid event was landed and counted in its card's online
features, and every invalid one is in the quarantine with its bytes as sent.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from featurelib.feature_data import online_values
from featurelib.raw_events import MAX_AHEAD_US, MAX_AMOUNT_CENTS, MAX_TEXT_CHARS, MIN_EVENT_US, REQUIRED, SCHEMAS
from featurelib.redis_server import RedisServer
from featurelib.repo import load_store
from featurelib.timeutil import SECOND, now_us
from tests.processes import (
    STREAMS,
    Processor,
    applied_repo,
    consumed,
    landed_ids,
    private_redis,
    quarantined,
    wait_until,
)

TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=MAX_TEXT_CHARS)
SHORT_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6)
NOT_AN_INTEGER = st.one_of(st.text(min_size=1).filter(lambda t: not re.fullmatch(r"-?[0-9]{1,18}", t)),
                           st.integers(10**18, 10**30).map(str))
NAMES = [f.name for f in SCHEMAS["transactions"]]
_ids = itertools.count()
SENT = {True: 0, False: 0}  # valid and invalid entries sent by all examples


@dataclass
class Pools:
    """What one example draws with hypothesis (tricky texts, edge integers, garbage bytes); its
    hundreds of entries are assembled from these by a hypothesis-seeded ``random.Random``, so an
    example stays small for hypothesis while the processor gets many entries."""

    rnd: random.Random
    texts: list[str]
    garbage: list[bytes]
    not_integers: list[str]

    def text(self) -> str:
        return self.rnd.choice(self.texts)


@st.composite
def pools(draw: st.DrawFn) -> Pools:
    return Pools(random.Random(draw(st.integers(0, 2**64))),
                 draw(st.lists(st.one_of(SHORT_TEXT, TEXT), min_size=2, max_size=8)),
                 draw(st.lists(st.binary(max_size=8), min_size=1, max_size=4)),
                 draw(st.lists(NOT_AN_INTEGER, min_size=1, max_size=3)))


def valid_event(p: Pools, card: str) -> dict[str, bytes]:
    """A valid transaction: any text, any allowed amount, a time in the last hour."""
    rnd = p.rnd
    fields = {
        "card_id": card, "user_id": p.text(), "device_id": p.text(), "merchant_id": p.text(),
        "merchant_category": p.text(), "country": p.text(),
        "amount_cents": str(rnd.choice([0, MAX_AMOUNT_CENTS, rnd.randint(0, MAX_AMOUNT_CENTS)])),
        "event_timestamp": str(now_us() - rnd.randint(0, 3600 * SECOND)),
    }
    if rnd.random() < 0.5:
        fields["is_fraud"] = rnd.choice(["true", "false"])
    if rnd.random() < 0.5:
        fields["fraud_pattern"] = p.text()[:20]
    return {k: v.encode() for k, v in fields.items()}


RULES = ["utf8", "name", "unknown", "twice", "missing", "empty", "long", "int", "bool", "amount", "future", "past"]


def broken(p: Pools, event: dict[str, bytes]) -> list[bytes]:
    """``event`` broken by one rule, as the flat field list to send (fields in any order)."""
    rnd, fields, extra = p.rnd, dict(event), []
    rule = rnd.choice(RULES)
    if rule == "utf8":
        fields[rnd.choice(["card_id", "country", "merchant_id"])] = rnd.choice(p.garbage) + b"\xff"
    elif rule == "name":
        extra = [rnd.choice(p.garbage) + b"\xfe", rnd.choice(p.garbage)]
    elif rule == "unknown":
        name = next((t for t in p.texts if t not in NAMES), "unknown")[:12]
        extra = [name.encode(), rnd.choice(p.garbage)]
    elif rule == "twice":
        extra = [rnd.choice(list(fields)).encode(), rnd.choice(p.garbage)]
    elif rule == "missing":
        fields.pop(rnd.choice(REQUIRED["transactions"]))
    elif rule == "empty":
        fields[rnd.choice(["user_id", "device_id", "merchant_id", "country"])] = b""
    elif rule == "long":
        fields["merchant_category"] = (p.text() * (MAX_TEXT_CHARS + 1))[:MAX_TEXT_CHARS + rnd.randint(1, 40)].encode()
    elif rule == "int":
        fields[rnd.choice(["amount_cents", "event_timestamp"])] = rnd.choice(p.not_integers).encode()
    elif rule == "bool":
        fields["is_fraud"] = rnd.choice(p.texts + ["True", "1", "yes"]).encode()
    elif rule == "amount":
        fields["amount_cents"] = str(rnd.choice([-1, -10**17, MAX_AMOUNT_CENTS + 1, 10**17])).encode()
    elif rule == "future":
        # Ten minutes beyond the limit: drawing a whole batch can take seconds on a loaded machine, and the
        # limit counts from the entry's arrival (the exact edge is tests/test_stream_events.py's).
        fields["event_timestamp"] = str(now_us() + MAX_AHEAD_US + rnd.choice([600 * SECOND, 10**17])).encode()
    else:
        fields["event_timestamp"] = str(rnd.choice([MIN_EVENT_US - 1, 0, -10**17])).encode()
    names = list(fields)
    rnd.shuffle(names)
    return [x for name in names for x in (name.encode(), fields[name])] + extra


@st.composite
def batch(draw: st.DrawFn) -> list[tuple[bool, list[bytes]]]:
    """(valid, flat fields) entries for a few cards with arbitrary ids; each gets a unique txn_id."""
    p = draw(pools())
    cards = [f"fz{next(_ids)}:" + p.text()[:40] for _ in range(p.rnd.randint(1, 4))]
    out = []
    for _ in range(p.rnd.randint(150, 400)):
        event = valid_event(p, p.rnd.choice(cards))
        event["txn_id"] = f"fuzz-{next(_ids)}".encode()  # unique: a repeated id is a duplicate, not an error
        ok = p.rnd.random() < 0.6
        out.append((ok, [x for name, value in event.items() for x in (name.encode(), value)] if ok
                    else broken(p, event)))
    return out


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory):
    with RedisServer() as server, private_redis(server):
        repo = applied_repo(tmp_path_factory.mktemp("fuzz") / "repo", server, "fuzz_repo")
        proc = Processor(repo, server, "--lateness", "7200", "--timer-ms", "50")
        proc.wait_for_log("consuming")
        yield repo, server, proc
        proc.stop()


# No shrinking: each example drives a live processor for seconds, and a failing one is printed whole.
@settings(max_examples=10, deadline=None, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(entries=batch())
def test_no_entry_stops_or_poisons_the_processor(processor, entries: list[tuple[bool, list[bytes]]]) -> None:
    repo, server, proc = processor
    client = server.client()
    stream_ids = []
    pipe = client.pipeline(transaction=False)
    for _, flat in entries:
        pipe.execute_command("XADD", STREAMS["transactions"], "*", *flat)
    stream_ids = [i.decode() for i in pipe.execute()]
    for ok, _ in entries:
        SENT[ok] += 1
    wait_until(lambda: consumed(client) or not proc.alive, 60)
    assert proc.alive, proc.log()[-3000:]
    assert consumed(client), "every entry, valid or not, is acknowledged"

    def txn_id(flat: list[bytes]) -> str:
        return dict(zip(flat[0::2], flat[1::2]))[b"txn_id"].decode(errors="replace")

    valid = {txn_id(flat) for ok, flat in entries if ok}
    invalid = {sid: flat for sid, (ok, flat) in zip(stream_ids, entries) if not ok}
    mine = {txn_id(flat) for _, flat in entries if b"txn_id" in flat[0::2]}
    wait_until(lambda: valid <= set(landed_ids(repo)), 30)
    assert set(landed_ids(repo)) & mine == valid, "valid events landed, invalid ones not"
    quarantine = {row["stream_id"]: row for row in quarantined(repo) if row["stream_id"] in set(stream_ids)}
    assert set(quarantine) == set(invalid)
    for sid, flat in invalid.items():
        assert [(f["name"], f["value"]) for f in quarantine[sid]["fields"]] == list(zip(flat[0::2], flat[1::2]))
        assert quarantine[sid]["reason"]

    # Applied, not only landed: each card counts exactly its valid events of the last 24 hours.
    per_card: dict[str, int] = {}
    for ok, flat in entries:
        if ok:
            card = dict(zip(flat[0::2], flat[1::2]))[b"card_id"].decode()
            per_card[card] = per_card.get(card, 0) + 1
    if per_card:
        store = load_store(repo)
        cards = sorted(per_card)
        online = online_values(store, store.get_feature_view("transaction_stats_5m"), cards)
        assert [row["values"]["txn_count_24h"] for row in online] == [per_card[c] for c in cards]


def test_the_processor_survived_everything(processor) -> None:
    """Thousands of entries, one processor, no error."""
    repo, server, proc = processor
    assert SENT[True] + SENT[False] >= 2_000 and SENT[False] >= 500, SENT
    assert proc.alive and "Traceback" not in proc.log()
    assert len(quarantined(repo)) == SENT[False] and len(landed_ids(repo)) == SENT[True]

