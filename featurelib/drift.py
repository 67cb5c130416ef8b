"""Distribution drift per feature: the library behind ``feature_utils.py drift``.

For each feature, a reference sample is compared with a recent one:

* by default, the offline rows of a reference window against those of a recent window;
* or the features of a model's training set (a Parquet file) against the features served
  recently (a Parquet file built the same way), or against the online values of the most
  recently active entities.

Two measures, both per feature:

* **PSI** (population stability index) over bins cut at the reference's distinct deciles
  (numeric features) or over the categories (categorical and boolean), with nulls as a bin
  of their own: ``sum((r - q) * ln(r / q))`` with shares floored at 1e-4;
* a **two-sample test**: Kolmogorov-Smirnov for numeric features, chi-square for
  categorical ones (SciPy). With hundreds of thousands of rows any difference is
  "significant", so a test only flags together with an effect size: KS statistic >= 0.1,
  or Cramér's V >= 0.1. Rows of one entity are not independent (offline rows are change
  points, many per entity), so the p-value counts distinct entities, not rows
  (:func:`effective_size`); the statistic itself uses every row.

Features tagged ``monitor.drift: skip`` (timestamps, calendar flags) are not compared. A
feature is flagged when PSI >= ``psi_threshold`` (0.2, the usual "significant shift") or
the test flags it. Flagged features get a PNG histogram of both samples. Profiles (null
share, mean, quantiles) come from Feast's own monitoring (``MetricsCalculator``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore, FeatureView
from feast.monitoring.metrics_calculator import MetricsCalculator

from featurelib import duck, tags
from featurelib.feature_data import existing_offline_path, online_values, recent_entities
from featurelib.report import Report
from featurelib.timeutil import format_us

EPS = 1e-4
MIN_EFFECT = 0.1
ALPHA = 0.001


@dataclass
class FeatureDrift:
    view: str
    feature: str
    kind: str  # numeric | categorical
    reference_rows: int
    recent_rows: int
    psi: float
    test: str
    statistic: float
    p_value: float
    flagged: bool
    reference_profile: dict = field(default_factory=dict)
    recent_profile: dict = field(default_factory=dict)
    effective_rows: list[int] | None = None  # distinct entities of each sample: the sizes the p-value uses
    plot: str | None = None


@dataclass
class DriftReport(Report):
    reference: str
    recent: str
    psi_threshold: float
    features: list[FeatureDrift]

    @property
    def ok(self) -> bool:
        return not any(f.flagged for f in self.features)

    def render(self) -> str:
        lines = [f"Drift: {self.recent} against {self.reference} (PSI >= {self.psi_threshold} or a two-sample test "
                 f"with effect >= {MIN_EFFECT} flags a feature)"]
        for f in sorted(self.features, key=lambda f: -f.psi):
            if not f.flagged:
                continue
            lines.append(f"  ❌ {f.view}:{f.feature}: PSI {f.psi:.3f}, {f.test} {f.statistic:.3f} (p={f.p_value:.2g})"
                         + (f", plot {f.plot}" if f.plot else ""))
        top = sorted((f for f in self.features if not f.flagged), key=lambda f: -f.psi)[:3]
        if top:
            lines.append("  highest PSI among unflagged: " + ", ".join(f"{f.feature} {f.psi:.3f}" for f in top))
        flagged = sum(f.flagged for f in self.features)
        lines.append(f"Result: {'OK' if self.ok else 'DRIFT'} ({flagged} of {len(self.features)} features flagged)")
        return "\n".join(lines)


def _kind(arr: pa.ChunkedArray | pa.Array) -> str | None:
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "numeric"
    if pa.types.is_boolean(t) or pa.types.is_string(t):
        return "categorical"
    return None  # lists are not compared


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.maximum(counts / total if total else counts.astype(float), EPS)


def psi(reference_counts: np.ndarray, recent_counts: np.ndarray) -> float:
    r, q = _shares(recent_counts), _shares(reference_counts)
    return float(np.sum((r - q) * np.log(r / q)))


def decile_cuts(reference: np.ndarray) -> np.ndarray:
    """PSI bin edges: the reference's distinct deciles. Bins are ``(-inf, c0], (c0, c1], ...,
    (c_last, inf)``, so a feature with few distinct values (a count that is mostly 0) still
    gets a bin per value instead of collapsing into one."""
    if not len(reference):
        return np.array([0.0])
    return np.unique(np.quantile(reference, np.linspace(0.1, 0.9, 9)))


def _nan_as_null(arr: pa.Array) -> pa.Array:
    """Float NaN counts as a null: it is no value, and it would poison the statistics."""
    if pa.types.is_floating(arr.type) and pc.any(pc.is_nan(arr)).as_py():
        return pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    return arr


def compare(reference: pa.Array, recent: pa.Array, n_eff: tuple[int, int] | None = None
            ) -> tuple[str, float, str, float, float, bool]:
    """(kind, psi, test, statistic, p_value, test_flags) of two samples of one feature.

    ``n_eff``: the effective sizes of the two samples when their rows are not independent
    (rows of one entity are alike: see :func:`effective_size`). The test statistic is
    computed on all rows; its p-value as if the samples had ``n_eff`` rows."""
    from scipy import stats

    kind = _kind(reference) or _kind(recent)
    reference, recent = _nan_as_null(reference), _nan_as_null(recent)
    ref_null, cur_null = reference.null_count, recent.null_count
    ref, cur = pc.drop_null(reference), pc.drop_null(recent)
    if kind == "numeric":
        a = np.asarray(pc.cast(ref, pa.float64()), dtype=float)
        b = np.asarray(pc.cast(cur, pa.float64()), dtype=float)
        cuts = decile_cuts(a)
        ref_counts = np.append(np.bincount(np.searchsorted(cuts, a, "left"), minlength=len(cuts) + 1), ref_null)
        cur_counts = np.append(np.bincount(np.searchsorted(cuts, b, "left"), minlength=len(cuts) + 1), cur_null)
        if len(a) and len(b):
            res = stats.ks_2samp(a, b)
            statistic, p = float(res.statistic), float(res.pvalue)
            if n_eff is not None:
                n, m = min(n_eff[0], len(a)), min(n_eff[1], len(b))
                p = float(stats.kstwobign.sf(statistic * math.sqrt(n * m / (n + m))))
        else:
            statistic, p = 0.0, 1.0
        return kind, psi(ref_counts, cur_counts), "KS", statistic, p, bool(p < ALPHA and statistic >= MIN_EFFECT)
    values = sorted(set(pc.cast(ref, pa.string()).to_pylist()) | set(pc.cast(cur, pa.string()).to_pylist()))

    def counts(arr: pa.Array, nulls: int) -> np.ndarray:
        vc = {d["values"]: d["counts"] for d in pc.value_counts(pc.cast(arr, pa.string())).to_pylist()}
        return np.array([vc.get(v, 0) for v in values] + [nulls], dtype=float)

    ref_counts, cur_counts = counts(ref, ref_null), counts(cur, cur_null)
    table = np.vstack([ref_counts, cur_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or min(table.sum(axis=1)) == 0:
        return kind or "categorical", psi(ref_counts, cur_counts), "chi-square", 0.0, 1.0, False
    chi2, p, dof, _ = stats.chi2_contingency(table, correction=False)
    cramers_v = math.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))
    if n_eff is not None:  # chi-square grows with the sample size for the same proportions
        p = stats.chi2.sf(chi2 * min(sum(n_eff) / table.sum(), 1.0), dof)
    return kind or "categorical", psi(ref_counts, cur_counts), "chi-square (Cramér's V)", cramers_v, float(p), \
        bool(p < ALPHA and cramers_v >= MIN_EFFECT)


def _profile(arr: pa.Array, kind: str) -> dict:
    calc = MetricsCalculator(histogram_bins=10)
    metrics = calc.compute_numeric(arr) if kind == "numeric" else calc.compute_categorical(arr)
    keep = ("row_count", "null_rate", "mean", "stddev", "min_val", "p50", "p99", "max_val")
    return {k: metrics[k] for k in keep if metrics.get(k) is not None}


def plot(view: str, feature: str, reference: pa.Array, recent: pa.Array, path: Path, labels: tuple[str, str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if _kind(reference) == "numeric":
        a = np.asarray(pc.cast(pc.drop_null(reference), pa.float64()), dtype=float)
        b = np.asarray(pc.cast(pc.drop_null(recent), pa.float64()), dtype=float)
        both = np.concatenate([a, b])
        bins = np.histogram_bin_edges(both, bins=40) if len(both) else 10
        ax.hist(a, bins=bins, density=True, alpha=0.5, label=labels[0])
        ax.hist(b, bins=bins, density=True, alpha=0.5, label=labels[1])
    else:
        values = sorted(set(pc.cast(reference, pa.string()).to_pylist()) | set(pc.cast(recent, pa.string()).to_pylist()),
                        key=str)
        x = np.arange(len(values))
        for offset, (arr, label) in zip((-0.2, 0.2), ((reference, labels[0]), (recent, labels[1]))):
            vals = pc.cast(arr, pa.string()).to_pylist()
            shares = [vals.count(v) / max(len(vals), 1) for v in values]
            ax.bar(x + offset, shares, width=0.4, label=label)
        ax.set_xticks(x, [str(v) for v in values], rotation=45)
    ax.set_title(f"{view}:{feature}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def compared_features(view: FeatureView) -> list[str]:
    """Features whose distribution is compared (not those tagged ``monitor.drift: skip``)."""
    return [f.name for f in view.features if tags.drift_compared(f.tags)]


def _window(store: FeatureStore, view: FeatureView, start_us: int, end_us: int, limit: int) -> pa.Table:
    """Up to ``limit`` rows drawn at random from those with ``start_us <= event time <= end_us``
    (the filter first, then the sample: a sample of the whole file would leave a short window
    a handful of rows)."""
    cols = ", ".join(f'"{name}"' for name in [view.join_keys[0], *compared_features(view)])
    return duck.arrow(f"SELECT * FROM (SELECT {cols} FROM {duck.parquet(existing_offline_path(store, view))} "
                      f"WHERE event_timestamp >= make_timestamptz({int(start_us)}) "
                      f"AND event_timestamp <= make_timestamptz({int(end_us)})) "
                      f"USING SAMPLE reservoir({int(limit)} ROWS) REPEATABLE (7)")


def drift(
    store: FeatureStore,
    reference: tuple[int, int],
    recent: tuple[int, int],
    *,
    psi_threshold: float = 0.2,
    plot_dir: Path | None = None,
    views: list[str] | None = None,
    limit: int = 200_000,
) -> DriftReport:
    """Offline rows of ``reference = (start_us, end_us)`` against those of ``recent``."""
    out = []
    labels = (f"reference {format_us(reference[0])[:16]}..{format_us(reference[1])[:16]}",
              f"recent {format_us(recent[0])[:16]}..{format_us(recent[1])[:16]}")
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if views and view.name not in views:
            continue
        ref, cur = _window(store, view, *reference, limit), _window(store, view, *recent, limit)
        out += _compare_tables(view.name, ref, cur, psi_threshold, plot_dir, labels, key=view.join_keys[0])
    return DriftReport(f"{format_us(reference[0])} .. {format_us(reference[1])}",
                       f"{format_us(recent[0])} .. {format_us(recent[1])}", psi_threshold, out)


def drift_against_training(store: FeatureStore, training_set: Path, *, served: Path | None = None, sample: int = 500,
                           psi_threshold: float = 0.2, plot_dir: Path | None = None,
                           views: list[str] | None = None) -> DriftReport:
    """A model's training set (Parquet with feature columns) against what is served.

    With ``served`` (Parquet of features served recently, built the way the training set
    was, for example :func:`featurelib.training.training_frame` over the last day's
    transactions), the two files are compared: same construction, so only a real change
    shows. Without it, against the online values of up to ``sample`` recently active
    entities per view: a snapshot "just after each entity's latest event", a different
    population from training rows "just before an event", so counting features shift
    even when nothing is wrong (docs/MONITORING.md); use it to catch gross breakage."""
    import pyarrow.parquet as pq

    training = pq.read_table(training_set)
    current = pq.read_table(served) if served is not None else None
    out = []
    labels = (f"training set {training_set.name}", f"served {served.name}" if served is not None else "online now")
    for view in sorted(store.list_feature_views(), key=lambda v: v.name):
        if views and view.name not in views:
            continue
        names = [n for n in compared_features(view) if n in training.column_names
                 and (current is None or n in current.column_names)]
        if not names:
            continue
        key = view.join_keys[0]
        if key in training.column_names and (current is None or key in current.column_names):
            names = [key, *names]
        if current is None:
            ids = recent_entities(store, view, sample)
            rows = [(i, r) for i, r in zip(ids, online_values(store, view, ids)) if r["present"]]
            other = pa.table({n: pa.array([i if n == key else r["values"].get(n) for i, r in rows],
                                          training.schema.field(n).type) for n in names})
        else:
            other = current.select(names)
        out += _compare_tables(view.name, training.select(names), other, psi_threshold, plot_dir, labels, key=key)
    recent = f"served features {served}" if served is not None else f"online values of up to {sample} recent entities per view"
    return DriftReport(f"training set {training_set}", recent, psi_threshold, out)


def effective_size(keys: pa.Array, values: pa.Array) -> int:
    """How many independent observations the non-null ``values`` are worth: the number of
    distinct entities (``keys``, row by row) that have one. Offline rows are change points,
    and an entity in a burst contributes many rows of nearly the same value, so a test that
    counted every row as independent would call day-to-day noise significant."""
    return max(1, len(pc.unique(pc.filter(keys, pc.is_valid(values)))))


def _compare_tables(view: str, ref: pa.Table, cur: pa.Table, psi_threshold: float, plot_dir: Path | None,
                    labels: tuple[str, str], key: str | None = None) -> list[FeatureDrift]:
    """Compare every feature column; ``key``, a join key column present in both tables, gives
    the effective sample sizes."""
    out = []
    keyed = key is not None and key in ref.column_names and key in cur.column_names
    ref_keys, cur_keys = (ref.column(key).combine_chunks(), cur.column(key).combine_chunks()) if keyed else (None, None)
    for name in ref.column_names:
        if name == key:
            continue
        a, b = ref.column(name).combine_chunks(), cur.column(name).combine_chunks()
        if _kind(a) is None or (len(a) == 0 or len(b) == 0):
            continue
        n_eff = (effective_size(ref_keys, a), effective_size(cur_keys, b)) if keyed else None
        kind, value, test, statistic, p, test_flags = compare(a, b, n_eff)
        flagged = value >= psi_threshold or test_flags
        f = FeatureDrift(view, name, kind, len(a), len(b), round(value, 6), test, round(statistic, 6), p, flagged,
                         _profile(a, kind), _profile(b, kind), effective_rows=list(n_eff) if n_eff else None)
        if flagged and plot_dir is not None:
            f.plot = str(plot(view, name, a, b, plot_dir / f"{view}__{name}.png", labels))
        out.append(f)
    return out
