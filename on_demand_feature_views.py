"""On-demand feature views: features of the transaction being scored.

They combine request data (what the payment request says) with stored features
of the card at serving time. They run in Feast's Python mode (a dict of lists
in, a dict of lists out), which costs a fraction of a millisecond per lookup.

Feast stores the function's source in the registry and re-creates it in a
namespace that holds only ``np`` and ``pd``, so the function imports what it
needs itself and its annotations use builtins only.
"""

from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float64, Int64, String

from feature_views import card_profile_24h_fv, transaction_stats_5m_fv
from featurelib.tags import output_doc_tags

OWNER = "ml-platform@example.com"

# What an authorization request tells us about the transaction being scored.
transaction_request = RequestSource(
    name="transaction_request",
    schema=[
        Field(name="txn_amount", dtype=Float64, description="Amount of the transaction being scored, in USD."),
        Field(name="txn_country", dtype=String, description="ISO 3166-1 alpha-2 country of the transaction."),
        Field(name="txn_merchant_category", dtype=String, description="Merchant category, e.g. grocery or crypto."),
        Field(name="txn_unix_us", dtype=Int64,
              description="Time of the transaction, in microseconds since the Unix epoch (UTC)."),
    ],
    description="Request data of a card authorization being scored for fraud.",
    owner=OWNER,
    tags={"team": "fraud"},
)


# Outputs: (name, type, unit, window, description). Feast 0.67 compares the declared output fields
# with fields it infers by running the function, using full Field equality, so output fields
# cannot carry a description or tags; the docs live in the view's tags instead
# (feature.<name>.description / .unit / .window), where `feature_utils.py docs` finds them.
_OUTPUTS = [
    ("amount_vs_avg_5m_ratio", Float64, "ratio", "5m",
     "txn_amount / amount_avg_5m; null when the card has no transaction in the last 5 minutes."),
    ("amount_zscore_24h", Float64, "standard deviations", "24h",
     "(txn_amount - card_amount_avg_24h) / card_amount_std_24h; null when the deviation is 0 or unknown."),
    ("is_new_country_24h", Bool, "flag", "24h",
     "True when txn_country is not among the card's countries of the last 24 hours (true for a card "
     "with no transaction in that window)."),
    ("minutes_since_last_txn", Float64, "minutes", "24h",
     "(txn_unix_us - last_txn_unix_us) / 60e6: minutes since the card's previous transaction at request "
     "time; null when there was none in the last 24 hours."),
    ("is_high_risk_merchant", Bool, "flag", "request",
     "True when txn_merchant_category is a high-risk category (electronics, gift cards, crypto, "
     "money transfer, gambling)."),
]


def _feature_doc_tags(outputs: list) -> dict[str, str]:
    tags: dict[str, str] = {}
    for name, _, unit, window, description in outputs:
        tags.update(output_doc_tags(name, description, unit, window))
    return tags


# Request-time features: the transaction compared with the card's recent history.
@on_demand_feature_view(
    sources=[
        transaction_stats_5m_fv[["amount_avg_5m"]],
        card_profile_24h_fv[["card_amount_avg_24h", "card_amount_std_24h", "card_countries_24h", "last_txn_unix_us"]],
        transaction_request,
    ],
    schema=[Field(name=name, dtype=dtype) for name, dtype, _, _, _ in _OUTPUTS],
    mode="python",
    description="Features of the transaction being scored, relative to the card's stored history.",
    owner=OWNER,
    tags={"team": "fraud", "use_case": "fraud_detection", "freshness": "request", **_feature_doc_tags(_OUTPUTS)},
)
def transaction_request_features(inputs: dict) -> dict:
    from featurelib.semantics import HIGH_RISK_MERCHANT_CATEGORIES

    out: dict = {
        "amount_vs_avg_5m_ratio": [], "amount_zscore_24h": [], "is_new_country_24h": [],
        "minutes_since_last_txn": [], "is_high_risk_merchant": [],
    }
    for amount, country, category, at_us, avg5, avg24, std24, countries, last_us in zip(
        inputs["txn_amount"], inputs["txn_country"], inputs["txn_merchant_category"], inputs["txn_unix_us"],
        inputs["amount_avg_5m"], inputs["card_amount_avg_24h"], inputs["card_amount_std_24h"],
        inputs["card_countries_24h"], inputs["last_txn_unix_us"],
    ):
        known = amount is not None
        out["amount_vs_avg_5m_ratio"].append(amount / avg5 if known and avg5 else None)
        out["amount_zscore_24h"].append((amount - avg24) / std24 if known and avg24 is not None and std24 else None)
        out["is_new_country_24h"].append(country not in (countries or ()))
        out["minutes_since_last_txn"].append(
            (at_us - last_us) / 60_000_000.0 if at_us is not None and last_us is not None else None)
        out["is_high_risk_merchant"].append(category in HIGH_RISK_MERCHANT_CATEGORIES)
    return out
