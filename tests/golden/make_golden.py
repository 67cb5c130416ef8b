"""Write the golden vectors: ``events.json`` (hand-picked raw events) and ``expected.json``
(every change-point row of every view for them), computed by the brute-force reference of
``featurelib/reference.py`` (``reference_rows``), never by the engines.

Run from the repository root: ``.venv/bin/python tests/golden/make_golden.py``. Only rerun it
when a definition changes on purpose; ``tests/test_golden.py`` fails while the committed files
differ from what this script writes. The format is described in ``README.md`` next to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from featurelib import reference
from featurelib import semantics as s
from featurelib.timeutil import MINUTE, SECOND, format_us, to_us

HERE = Path(__file__).resolve().parent
EVENTS_PATH = HERE / "events.json"
EXPECTED_PATH = HERE / "expected.json"

FRI = to_us("2024-06-07T23:50:00Z")  # a Friday, 10 minutes before Saturday 00:00 UTC
SAT = to_us("2024-06-08T00:00:00Z")
SUN = to_us("2024-06-09T12:00:00Z")
MON = to_us("2024-06-10T09:00:00Z")
P = to_us("2024-06-07T18:00:00Z")
Q = to_us("2024-06-08T10:00:00Z")
R = to_us("2024-06-09T20:00:00Z")
U = to_us("2024-06-10T15:00:00Z")
V = to_us("2024-06-11T08:00:00Z")
H = s.W_24H


def txn(txn_id: str, t: int, card: str, cents: int, country: str, category: str, device: str, merchant: str,
        user: str, note: str = "") -> dict[str, Any]:
    return {"txn_id": txn_id, "card_id": card, "user_id": user, "device_id": device, "merchant_id": merchant,
            "merchant_category": category, "country": country, "amount_cents": cents,
            "event_timestamp": t, "event_timestamp_iso": format_us(t), "note": note}


def click(event_id: str, t: int, user: str, session: str, kind: str, category: str, dwell_ms: int | None = None,
          scroll_pct: int | None = None, note: str = "") -> dict[str, Any]:
    return {"event_id": event_id, "user_id": user, "session_id": session, "device_id": f"device_of_{user}",
            "event_type": kind, "page_category": category, "dwell_ms": dwell_ms, "scroll_pct": scroll_pct,
            "event_timestamp": t, "event_timestamp_iso": format_us(t), "note": note}


TRANSACTIONS = [
    # card_edges: window edges, a tie, a zero amount, the largest amount, case-sensitive strings, the weekend edge.
    txn("tx01", FRI, "card_edges", 1050, "US", "grocery", "device_1", "merchant_1", "user_1"),
    txn("tx02", FRI + 5 * MINUTE, "card_edges", 2025, "DE", "Crypto", "device_1", "merchant_2", "user_1",
        "at tx01 + 5m: tx01 leaves the 5m window as this enters; 'Crypto' is not high risk (case-sensitive)"),
    txn("tx03", FRI + 5 * MINUTE, "card_edges", 0, "de", "crypto", "device_1", "merchant_2", "user_1",
        "tie with tx02; zero amount; 'de' is a country distinct from 'DE'; 'crypto' is high risk"),
    txn("tx04", SAT - 1, "card_edges", 1, "US", "gift_cards", "device_2", "merchant_3", "user_1",
        "Friday 23:59:59.999999 UTC: is_weekend 0"),
    txn("tx05", SAT, "card_edges", 2, "US", "grocery", "device_2", "merchant_1", "user_1",
        "Saturday 00:00:00 UTC: is_weekend 1"),
    txn("tx06", FRI + 30 * MINUTE, "card_edges", 1_000_000_000, "FR", "electronics", "device_1", "merchant_4", "user_1",
        "at tx01 + 30m, as tx01 leaves the 30m window; the largest amount the raw schema allows"),
    txn("tx07", FRI + H, "card_edges", 999, "US", "grocery", "device_1", "merchant_1", "user_1",
        "at tx01 + 24h, as tx01 leaves the 24h window"),
    # card_other: one transaction, on device_1 exactly when tx01 leaves device_1's 1h window.
    txn("tx08", FRI + s.W_1H, "card_other", 4242, "us", "Gambling", "device_1", "merchant_6", "user_3",
        "at tx01 + 1h on device_1; 'us' differs from 'US'"),
    # card_whale: three equal large amounts; the one-pass variance makes the std 0.0141... dollars, not 0.
    txn("tx09", SUN, "card_whale", 99_999_999, "GB", "travel", "device_2", "merchant_5", "user_2"),
    txn("tx10", SUN + 10 * SECOND, "card_whale", 99_999_999, "GB", "travel", "device_2", "merchant_5", "user_2"),
    txn("tx11", SUN + 20 * SECOND, "card_whale", 99_999_999, "GB", "travel", "device_2", "merchant_5", "user_2",
        "three equal amounts: card_amount_std_24h is not 0 (cancellation in S2/n - mean^2)"),
    # card_burst: six transactions in 5 minutes (velocity, high velocity, a tie, geo diversity, high-risk share).
    txn("tx12", MON, "card_burst", 100, "US", "electronics", "device_3", "merchant_7", "user_2"),
    txn("tx13", MON + 30 * SECOND, "card_burst", 250, "US", "gambling", "device_3", "merchant_8", "user_2"),
    txn("tx14", MON + 60 * SECOND, "card_burst", 333, "GB", "money_transfer", "device_3", "merchant_9", "user_2"),
    txn("tx15", MON + 60 * SECOND, "card_burst", 333, "FR", "grocery", "device_3", "merchant_9", "user_4",
        "tie with tx14: time_since_last_txn_min 0.0; another user on device_3"),
    txn("tx16", MON + 120 * SECOND, "card_burst", 1, "US", "GAMBLING", "device_3", "merchant_8", "user_2",
        "fifth in 5 minutes: is_high_velocity; 'GAMBLING' is not high risk"),
    txn("tx17", MON + 5 * MINUTE - 1, "card_burst", 50, "GB", "travel", "device_3", "merchant_7", "user_2",
        "1 us before tx12 leaves the 5m window"),
]

CLICKSTREAM = [
    # user_1: a tie between sessions (greatest session_id as a string), nulls, a timeout and a resumed session.
    click("ck00", P - 2 * MINUTE, "user_1", "session_10", "page_view", "search", 3_000, 10),
    click("ck01", P, "user_1", "session_10", "page_view", "home", 10_000, 50),
    click("ck02", P, "user_1", "session_9", "page_view", "Home", 20_500, 40,
          "tie with ck01: the current session is 'session_9' ('9' > '1' as strings: 1 page, not 2); "
          "'Home' differs from 'home'"),
    click("ck03", P + MINUTE, "user_1", "session_10", "click", "home"),
    click("ck04", P + 2 * MINUTE, "user_1", "session_10", "add_to_cart", "electronics"),
    click("ck05", P + 3 * MINUTE, "user_1", "session_10", "page_view", "electronics", None, None,
          "a page view with null dwell and scroll: counted as a page view, 0 ms and 0 % in the sums"),
    click("ck06", P + 5 * MINUTE, "user_1", "session_10", "page_view", "home", 0, 100,
          "at ck01 + 5m: ck01 and ck02 leave the 5m window as this enters"),
    click("ck07", P + 5 * MINUTE + 1, "user_1", "session_10", "Page_View", "home", 5_000, 5,
          "event_type 'Page_View' is an event but not a page view: its dwell and scroll are not counted"),
    click("ck08", P + 36 * MINUTE + 1, "user_1", "session_10", "page_view", "home", 30_000, 20,
          "31 minutes after ck07: the session timed out at ck07 + 30m and resumes with all its events of the last 24h"),
    click("ck09", P + 66 * MINUTE + 1, "user_1", "session_10", "purchase", "checkout", None, None,
          "at ck08 + 30m: ck08 is out of the 30m interval, ck09 itself keeps the session current"),
    click("ck10", P + 66 * MINUTE + 1, "user_1", "session_10", "purchase", "checkout", None, None,
          "tie with ck09: 2 purchases for 1 cart add, conversion_rate_session capped at 1"),
    # user_3: the session horizon edge.
    click("ck11", Q, "user_3", "session_long", "page_view", "books", 7_000, 30),
    click("ck12", Q + H, "user_3", "session_long", "page_view", "books", 9_000, 60,
          "at ck11 + 24h: ck11 leaves the session horizon as this enters"),
    # user_4: an engagement score of exactly 0.35 in real numbers computes to 0.3499999999999999.
    click("ck13", R, "user_4", "session_a", "page_view", "sports", 40_000, 70),
    click("ck14", R + MINUTE, "user_4", "session_a", "page_view", "sports", 40_000, 70),
    click("ck15", R + 2 * MINUTE, "user_4", "session_b", "page_view", "toys", 40_000, 65),
    click("ck16", R + 3 * MINUTE, "user_4", "session_b", "click", "toys"),
    click("ck17", R + 4 * MINUTE, "user_4", "session_b", "add_to_cart", "toys", None, None,
          "score (0.05 + 1/3 + 0.68333... + 1/3) / 4 = 0.35 exactly, computed 0.3499999999999999: not a likely "
          "purchaser; at ck13 + 5m it becomes one"),
    # user_5: a score of exactly 0.35 in float (a likely purchaser), dwell at the 120 s cap.
    click("ck18", U, "user_5", "session_shared", "page_view", "beauty", 120_000, 35),
    click("ck19", U + SECOND, "user_5", "session_shared", "add_to_cart", "beauty", None, None,
          "score (0.05 + 1.0 + 0.35 + 0.0) / 4 = 0.35 in float: is_likely_purchaser"),
    # user_6: the same session_id as user_5 (session_activity merges both users), click rate above 1.
    click("ck20", U + 2 * SECOND, "user_6", "session_shared", "click", "toys", None, None,
          "another user's event in session_shared: counted by session_activity, not by user_5's session"),
    click("ck21", U + 3 * SECOND, "user_6", "session_shared", "page_view", "toys", 150_000, 100,
          "dwell 150 s, above the 120 s cap of engagement_score"),
    click("ck22", U + 4 * SECOND, "user_6", "session_shared", "click", "toys"),
    click("ck23", U + 5 * SECOND, "user_6", "session_shared", "click", "toys",
          note="3 clicks per page view: click_rate_5m 3.0, capped at 1 in engagement_score"),
    # user_7: a tie between session ids beyond the Basic Multilingual Plane: code point order.
    click("ck24", V - MINUTE, "user_7", "s_\uff5e", "page_view", "home", 1_000, 10),
    click("ck25", V, "user_7", "s_\uff5e", "page_view", "home", 1_000, 10),
    click("ck26", V, "user_7", "s_\U0001f600", "page_view", "home", 2_000, 20,
          "tie with ck25: U+1F600 > U+FF5E in code points (and UTF-8 bytes), so the current session is "
          "'s_\U0001f600' (1 page); UTF-16 order (Java's String.compareTo) would pick 's_\uff5e' (2 pages)"),
]

EVENTS = {s.TRANSACTIONS: TRANSACTIONS, s.CLICKSTREAM: CLICKSTREAM}
INFO_FIELDS = ("event_timestamp_iso", "note")
"""Fields of events.json that are not raw-event fields."""


def reference_input(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as ``semantics.reference_*`` read them: raw fields only, ``event_timestamp`` in
    integer microseconds, a null ``dwell_ms`` or ``scroll_pct`` as 0 (what the engine reads
    for a null, ``timeline.Chunk.ints``, and what the stream processor hands its reference)."""
    out = []
    for e in events:
        r = {k: v for k, v in e.items() if k not in INFO_FIELDS}
        for name in ("dwell_ms", "scroll_pct"):
            if name in r and r[name] is None:
                r[name] = 0
        out.append(r)
    return out


def _type(values: list[Any]) -> str:
    value = next(v for v in values if v is not None)
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, list):
        return "list<string>"
    raise TypeError(f"unexpected value {value!r}")


def expected() -> dict[str, Any]:
    views = {}
    for view in s.VIEWS.values():
        rows = reference.reference_rows(view, reference_input(EVENTS[view.events]))
        out = [{view.join_key: r[view.join_key], "event_timestamp": r["event_timestamp"],
                "event_timestamp_iso": format_us(r["event_timestamp"]), **{f: r[f] for f in view.features}}
               for r in rows]
        views[view.name] = {
            "join_key": view.join_key,
            "events": view.events,
            "change_offsets_us": list(view.change_offsets),
            "features": {f: _type([r[f] for r in rows]) for f in view.features},
            "rows": out,
        }
    return {"views": views}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def render_events() -> str:
    lines = ["{"]
    for i, (kind, events) in enumerate(EVENTS.items()):
        lines.append(f'  "{kind}": [')
        lines += [f"    {_dumps(e)}" + ("," if j < len(events) - 1 else "") for j, e in enumerate(events)]
        lines.append("  ]" + ("," if i < len(EVENTS) - 1 else ""))
    return "\n".join(lines + ["}"]) + "\n"


def render_expected() -> str:
    """One row per line, so that a change shows as a readable diff."""
    views = expected()["views"]
    lines = ['{', '  "views": {']
    for i, (name, v) in enumerate(views.items()):
        lines.append(f'    "{name}": {{')
        lines += [f'      "{k}": {_dumps(v[k])},' for k in ("join_key", "events", "change_offsets_us", "features")]
        lines.append('      "rows": [')
        lines += [f"        {_dumps(r)}" + ("," if j < len(v["rows"]) - 1 else "") for j, r in enumerate(v["rows"])]
        lines.append("      ]")
        lines.append("    }" + ("," if i < len(views) - 1 else ""))
    return "\n".join(lines + ["  }", "}"]) + "\n"


def main() -> None:
    EVENTS_PATH.write_text(render_events(), encoding="utf-8")
    EXPECTED_PATH.write_text(render_expected(), encoding="utf-8")
    print(f"wrote {EVENTS_PATH} and {EXPECTED_PATH}")


if __name__ == "__main__":
    main()
