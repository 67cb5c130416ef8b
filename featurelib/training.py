"""Training sets without leakage.

A fraud label belongs to a transaction at time ``t``. Its features must describe the
card *before* the transaction, as the online store does when the authorization is
scored (the stream has not yet seen the transaction). Stored features at ``t`` already
include every event stamped ``t`` (windows are closed at the end: ``(t - w, t]``), so
the point-in-time lookup must happen at ``t - 1 µs``: features then include no event at
or after ``t``, including the labelled transaction itself. (Other events stamped the
very same microsecond are excluded too: the conservative choice.)

``training_frame`` does exactly that with ``get_historical_features`` and returns the
caller's rows, in the caller's order, with their original timestamps, the features,
and a ``feature_timestamp`` column that shows the cut-off used.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from feast import FeatureService, FeatureStore

from featurelib import duck
from featurelib.parquet_files import raw_files
from featurelib.repo import quiet

CUTOFF = pd.Timedelta(microseconds=1)


def training_frame(
    store: FeatureStore,
    labels: pd.DataFrame,
    features: list[str] | FeatureService,
    *,
    timestamp_col: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """Features of each labelled row as of 1 µs before its ``timestamp_col`` (naive = UTC)."""
    if timestamp_col not in labels.columns:
        raise ValueError(f"labels have no {timestamp_col!r} column")
    at = pd.to_datetime(labels[timestamp_col], utc=True).dt.floor("us")
    entity_df = labels.drop(columns=[timestamp_col]).reset_index(drop=True)
    entity_df["event_timestamp"] = (at - CUTOFF).astype("datetime64[us, UTC]").to_numpy()
    entity_df["__row"] = range(len(entity_df))
    with quiet():
        df = store.get_historical_features(entity_df=entity_df, features=features,
                                           full_feature_names=full_feature_names).to_df()
    df = df.sort_values("__row").drop(columns="__row").reset_index(drop=True)
    df = df.rename(columns={"event_timestamp": "feature_timestamp"})
    df.insert(0, timestamp_col, at.reset_index(drop=True))
    return df


def transaction_labels(raw_dir: Path, limit: int | None = None, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Labelled transactions as entity rows for the ``fraud_detection`` service: join keys,
    the request fields of ``transaction_request``, ``event_timestamp`` and ``is_fraud``."""
    where = f"WHERE event_timestamp >= TIMESTAMPTZ '{since.isoformat()}'" if since is not None else ""
    lim = f"LIMIT {int(limit)}" if limit else ""
    return duck.frame(
        f"""SELECT txn_id, card_id, device_id, amount_cents / 100.0 AS txn_amount, country AS txn_country,
                   merchant_category AS txn_merchant_category, epoch_us(event_timestamp) AS txn_unix_us,
                   event_timestamp, is_fraud
            FROM {duck.parquet(raw_files(raw_dir, "transactions"))} {where} ORDER BY event_timestamp, txn_id {lim}"""
    )
