"""Feature services: the versioned sets of features that models read.

A model asks for a service by name (``features=store.get_feature_service("fraud_detection")``)
rather than listing features, so the set it was trained on and the set it is served
stay identical. The other definitions live beside this file, one kind per file:

* ``entities.py``                 card, user, device, session;
* ``data_sources.py``             Parquet files of feature rows and push sources for stream jobs;
* ``feature_views.py``            the stored features and their schemas;
* ``on_demand_feature_views.py``  request-time features of the transaction being scored.

``feast apply`` registers everything these files define (``.feastignore`` keeps
tests, scripts and benchmarks out).
"""

from feast import FeatureService

from feature_views import (
    card_profile_24h_fv,
    device_activity_24h_fv,
    session_activity_fv,
    transaction_stats_5m_fv,
    user_engagement_5m_fv,
)
from on_demand_feature_views import transaction_request_features

OWNER = "ml-platform@example.com"

# Fraud Detection Service: everything a real-time fraud model reads for one authorization.
# Entity rows carry card_id and device_id, plus the request fields of transaction_request
# (txn_amount, txn_country, txn_merchant_category, txn_unix_us).
fraud_detection = FeatureService(
    name="fraud_detection",
    features=[
        transaction_stats_5m_fv,
        card_profile_24h_fv,
        device_activity_24h_fv,
        transaction_request_features,
    ],
    description="Real-time fraud scoring features: card velocity and amounts, 24-hour card profile, "
                "device activity and request-time comparisons.",
    owner=OWNER,
    tags={"team": "fraud", "version": "1", "model": "fraud_scoring"},
)

# Personalization Service: a user's engagement and the current session's activity.
# Entity rows carry user_id and session_id.
personalization = FeatureService(
    name="personalization",
    features=[user_engagement_5m_fv, session_activity_fv],
    description="User behavior features for personalization: 5-minute engagement, current session funnel "
                "and session activity.",
    owner=OWNER,
    tags={"team": "personalization", "version": "1", "model": "recommendations"},
)
