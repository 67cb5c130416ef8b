"""Models logged to MLflow with the feature service spec they were trained on.

A model trained on a feature service is only valid while the service serves the same features
with the same definitions. ``log_model_with_spec`` logs the model to the active MLflow run
together with the service's spec (``featurelib.spec.service_spec``: every feature, its type,
unit, window, expectations, source view and TTL) as ``feature_spec.json`` and the spec's
``definitions_sha256`` as the run tag ``feature_spec.definitions_sha256``; ``check_run``
compares a run's spec with the definitions registered now and says what changed.

Feast 0.67's own MLflow integration (``feast.mlflow_integration``, ``store.mlflow``) is used
where it fits: ``mlflow_store`` turns it on for one ``FeatureStore`` with a local tracking
store, so that ``store.mlflow.start_run`` opens the run in an experiment named after the Feast
project and ``get_historical_features`` (hence ``training_frame``) inside the run tags it with
``feast.feature_service``, ``feast.feature_refs``, ``feast.feature_views`` and the entity
count. Its ``log_model`` is not used: it passes the model positionally, as MLflow's framework
flavours (sklearn, xgboost, ...) take it, not pyfunc, the flavour of a model without a framework
(``mlflow.pyfunc.log_model``'s first argument is the artifact path), and it records feature
names only. ``feast_features.json``, the list of feature references
that Feast's ``store.mlflow.resolve_features`` checks a registered model against, is written
here instead, in Feast's format.

The integration is turned on in code, not in ``feature_store.yaml``: an ``mlflow:`` section
there would enable it for every process that loads this repository: ``feast serve`` and any SDK
client would import MLflow on their first ``get_online_features``.

Requires MLflow (``pip install -r requirements-mlflow.txt``: ``mlflow-skinny`` and ``alembic``
for the SQLite tracking store); nothing else in ``featurelib`` imports this module. Importing it
turns MLflow's usage telemetry off unless ``MLFLOW_DISABLE_TELEMETRY`` is set already.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from scipy.special import expit
from scipy.stats import rankdata

from featurelib.repo import UserError, load_store, quiet
from featurelib.spec import service_spec

# MLflow 3 sends usage telemetry to its servers unless told not to (it skips CI and pytest on its own,
# not a developer's or a scheduler's run): off unless MLFLOW_DISABLE_TELEMETRY says otherwise.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

try:
    import mlflow
    import mlflow.pyfunc
    from feast.mlflow_integration.config import MlflowConfig
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("featurelib.model_registry needs MLflow: pip install -r requirements-mlflow.txt") from exc

SPEC_ARTIFACT = "feature_spec.json"
"""The run artifact holding the feature service spec the model was trained on."""
FEAST_FEATURES_ARTIFACT = "feast_features.json"
"""The feature references, in the file and format Feast's ``resolve_features`` validates."""
HASH_TAG = "feature_spec.definitions_sha256"
"""The run tag holding the spec's ``definitions_sha256`` (searchable: ``tags."feature_spec.definitions_sha256" = '...'``)."""
SERVICE_TAG = "feast.feature_service"
"""The run tag naming the feature service (the key Feast's own integration uses)."""
MODEL_NAME = "model"
"""The name the model is logged under: ``runs:/<run_id>/model``."""

_NUMERIC_TYPES = frozenset({"Int32", "Int64", "Float32", "Float64", "Bool"})


def local_tracking_uri(directory: str | Path) -> str:
    """A local MLflow tracking store in ``directory``: SQLite ``mlflow.db``, artifacts beside it in
    ``artifacts/`` (set by ``mlflow_store``). No server involved. (MLflow 3.17 refuses the plain
    file store unless ``MLFLOW_ALLOW_FILE_STORE=true``, hence SQLite.)"""
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'mlflow.db').as_posix()}"


def _artifact_root(tracking_uri: str) -> str | None:
    """``artifacts/`` beside a local SQLite store; ``None`` (MLflow's default) for any other store.

    Without it, MLflow puts a new experiment's artifacts in ``./mlruns`` of the current directory."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return (Path(tracking_uri[len(prefix):]).parent / "artifacts").as_uri()


def _ensure_experiment(tracking_uri: str | None, name: str) -> None:
    """Create experiment ``name`` with its artifacts next to a local store, unless it exists."""
    if tracking_uri is None or (root := _artifact_root(tracking_uri)) is None:
        return
    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(name) is None:
        try:
            client.create_experiment(name, artifact_location=root)
        except MlflowException:  # created meanwhile by another process
            if client.get_experiment_by_name(name) is None:
                raise


def mlflow_store(repo: str | Path | None = None, tracking_uri: str | None = None) -> FeatureStore:
    """The ``FeatureStore`` of ``repo`` with Feast's MLflow integration on, logging to ``tracking_uri``
    (e.g. ``local_tracking_uri("data/mlflow")``); without one, ``feature_store.yaml``'s ``mlflow:``
    section must enable it.

    Use ``store.mlflow.start_run(...)`` for the training run: Feast tags it with the project and,
    for each ``get_historical_features`` inside it, the feature service and references."""
    store = load_store(repo)
    if tracking_uri is not None:
        store.config.mlflow_config = MlflowConfig(enabled=True, tracking_uri=tracking_uri)
    config = store.config.mlflow
    if config is None or not config.enabled:
        raise UserError("no tracking URI given and feature_store.yaml does not enable `mlflow:`")
    _ensure_experiment(config.get_tracking_uri(), store.project)
    if store.mlflow is None:
        raise UserError("Feast's MLflow integration did not start (is MLflow installed? pip install -r requirements-mlflow.txt)")
    return store


def model_features(spec: Mapping[str, Any]) -> list[str]:
    """The spec's numeric scalar features (integers, floats, flags) in spec order, without the
    absolute timestamps (unit "... since the Unix epoch"): what a linear model can use as is."""
    return [f["name"] for f in spec["features"]
            if f["type"] in _NUMERIC_TYPES and "since the Unix epoch" not in (f.get("unit") or "")]


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The feature columns as float64 (flags 0/1, nulls NaN), whatever their pandas dtype: Feast
    returns a feature as int64 online but float64 or Int64 offline when some rows lack it."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(f"rows lack the model's features: {', '.join(missing)}")
    if not features:
        return np.empty((len(frame), 0))
    return np.column_stack([frame[f].to_numpy(dtype="float64", na_value=np.nan) for f in features])


@dataclass(frozen=True)
class LogisticModel:
    """A logistic regression on standardized features: missing values count as the training mean."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float

    def _inputs(self, frame: pd.DataFrame) -> np.ndarray:
        x = (_matrix(frame, self.features) - np.array(self.mean)) / np.array(self.scale)
        return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The probability of the positive label for each row of ``frame`` (it needs the ``features`` columns)."""
        return expit(self._inputs(frame) @ np.array(self.weights) + self.intercept)


def fit_logistic(frame: pd.DataFrame, features: Sequence[str], label: str = "is_fraud", *,
                 l2: float = 1.0, max_iter: int = 50) -> LogisticModel:
    """Fit a logistic regression of ``label`` (0/1) on ``features`` by Newton's method with an L2
    penalty ``l2`` on the weights (not the intercept): deterministic, a few iterations for a few
    dozen features. Raises ``ValueError`` when the rows do not hold both labels."""
    if label not in frame.columns:
        raise ValueError(f"rows have no {label!r} column")
    y = frame[label].to_numpy(dtype="float64", na_value=np.nan)
    labels = set(np.unique(y[~np.isnan(y)]).tolist())
    if np.isnan(y).any() or labels != {0.0, 1.0}:
        raise ValueError(f"{label!r} must be 0 or 1 in every row, with both present (found {sorted(labels)}"
                         f"{' and nulls' if np.isnan(y).any() else ''}): take more labelled rows")
    raw = _matrix(frame, features)
    with np.errstate(invalid="ignore"):
        present = ~np.isnan(raw)
        counts = present.sum(axis=0)
        mean = np.where(counts > 0, np.nansum(raw, axis=0) / np.maximum(counts, 1), 0.0)
        scale = np.sqrt(np.nansum((raw - mean) ** 2, axis=0) / np.maximum(counts, 1))
    scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
    x = np.nan_to_num((raw - mean) / scale, nan=0.0)
    a = np.column_stack([np.ones(len(x)), x])
    penalty = np.diag([0.0] + [l2] * x.shape[1])
    w = np.zeros(a.shape[1])
    for _ in range(max_iter):
        p = expit(a @ w)
        gradient = a.T @ (p - y) + penalty @ w
        hessian = (a.T * (p * (1 - p))) @ a + penalty + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogisticModel(tuple(features), tuple(mean.tolist()), tuple(scale.tolist()),
                         tuple(w[1:].tolist()), float(w[0]))


def evaluate(model: LogisticModel, frame: pd.DataFrame, label: str = "is_fraud") -> dict[str, float]:
    """``rows``, ``positives``, ``log_loss`` and (when both labels occur) ``auc`` of ``model`` on ``frame``."""
    y = frame[label].to_numpy(dtype="float64")
    p = np.clip(model.predict_proba(frame), 1e-15, 1 - 1e-15)
    metrics = {"rows": float(len(y)), "positives": float(y.sum()),
               "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else float("nan")}
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos and n_neg:
        ranks = rankdata(p)
        metrics["auc"] = float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return metrics


class SpecModel(mlflow.pyfunc.PythonModel):
    """What MLflow stores (``mlflow.pyfunc.load_model("runs:/<run_id>/model")``): ``predict`` takes
    rows carrying the model's feature columns, as ``training_frame`` returns them or online features
    in a DataFrame, and returns the probability of the positive label.

    Logged without an MLflow signature: MLflow's schema enforcement refuses an int64 column where
    the signature says double, and Feast returns the same feature as either. ``feature_spec.json``
    is the input contract."""

    def __init__(self, model: LogisticModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.model.predict_proba(model_input)


def _refs(store: FeatureStore, feature_service: str) -> list[str]:
    """The service's feature references as Feast writes them to ``feast_features.json``."""
    service = store.get_feature_service(feature_service)
    return [f"{p.name_to_use()}:{f.name}" for p in service.feature_view_projections for f in p.features]


def log_model_with_spec(store: FeatureStore, model: LogisticModel | mlflow.pyfunc.PythonModel, feature_service: str,
                        *, metrics: Mapping[str, float] | None = None) -> str:
    """Log ``model`` to the active MLflow run (``store.mlflow.start_run()``) with the spec of
    ``feature_service`` as registered in ``store`` now; returns the run id. ``model`` is a
    ``LogisticModel`` or any MLflow ``PythonModel`` (logged as it is).

    The run gets ``feature_spec.json`` (the spec), ``feast_features.json`` (the feature
    references, for Feast's ``resolve_features``), the tags ``feature_spec.definitions_sha256``
    and ``feast.feature_service``, the model's parameters and ``metrics``; the model itself is
    ``runs:/<run_id>/model``, whose MLmodel metadata repeats the service and the hash."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: call log_model_with_spec inside `with store.mlflow.start_run():`")
    store.refresh_registry()
    spec = service_spec(store, feature_service)
    digest = spec["definitions_sha256"]
    mlflow.log_dict(spec, SPEC_ARTIFACT)
    mlflow.log_dict(_refs(store, feature_service), FEAST_FEATURES_ARTIFACT)
    mlflow.set_tags({HASH_TAG: digest, SERVICE_TAG: feature_service})
    if isinstance(model, LogisticModel):
        mlflow.log_params({"model_type": "logistic_regression", "model_features": len(model.features)})
        model = SpecModel(model)
    mlflow.log_param("feature_service", feature_service)
    if metrics:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
    with quiet():  # MLflow's advice on pickled Python models and input examples, at warning level
        mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=model,
            pip_requirements=[f"numpy=={np.__version__}", f"pandas=={pd.__version__}", f"mlflow-skinny=={mlflow.__version__}"],
            metadata={"feature_service": feature_service, "definitions_sha256": digest},
        )
    return run.info.run_id


def read_spec_from_run(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """The feature service spec logged with run ``run_id`` (MLflow's current tracking URI when
    ``tracking_uri`` is ``None``). Raises ``ValueError`` when the run has no spec, or when its
    ``feature_spec.definitions_sha256`` tag disagrees with the spec's own hash (an edited run)."""
    client = MlflowClient(tracking_uri)
    tags = client.get_run(run_id).data.tags
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, SPEC_ARTIFACT, tmp)
        except (MlflowException, OSError) as exc:
            raise ValueError(f"run {run_id} has no {SPEC_ARTIFACT}: it was not logged with log_model_with_spec") from exc
        spec = json.loads(Path(path).read_text())
    if tags.get(HASH_TAG) != spec.get("definitions_sha256"):
        raise ValueError(f"run {run_id}: tag {HASH_TAG}={tags.get(HASH_TAG)!r} but {SPEC_ARTIFACT} says "
                         f"{spec.get('definitions_sha256')!r}")
    return spec


@dataclass(frozen=True)
class SpecCheck:
    """A logged spec compared with the definitions registered now."""

    feature_service: str
    logged_sha256: str
    registered_sha256: str | None
    """``None`` when the feature service is no longer registered."""
    differences: tuple[str, ...]
    """What differs, one line each: features removed, added or changed, views changed."""

    @property
    def matches(self) -> bool:
        """The model's features are still served with the definitions it was trained on."""
        return self.registered_sha256 == self.logged_sha256 and not self.differences

    def describe(self) -> str:
        """One line when they match; otherwise a line naming both hashes, then each difference."""
        if self.matches:
            return f"{self.feature_service}: definitions match the registry (sha256 {self.logged_sha256[:12]})"
        registered = self.registered_sha256[:12] if self.registered_sha256 else "none"
        lines = [f"{self.feature_service}: MISMATCH, the model was trained on definitions sha256 {self.logged_sha256[:12]}, "
                 f"the registry has {registered}"]
        return "\n".join(lines + [f"  - {d}" for d in self.differences])


def _changed(kind: str, name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [f"{kind} {name}: {key} {old.get(key)!r} -> {new.get(key)!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def spec_differences(logged: Mapping[str, Any], registered: Mapping[str, Any]) -> list[str]:
    """What differs between two specs of one feature service, one readable line each."""
    out = _changed("feature service", logged["feature_service"]["name"], logged["feature_service"],
                   registered["feature_service"])
    if logged.get("project") != registered.get("project"):
        out.append(f"project {logged.get('project')!r} -> {registered.get('project')!r}")
    for kind, key, items in (("feature", "ref", "features"), ("view", "view", "sources")):
        old = {item[key]: item for item in logged[items]}
        new = {item[key]: item for item in registered[items]}
        out += [f"{kind} {name} removed" for name in old if name not in new]
        out += [f"{kind} {name} added" for name in new if name not in old]
        for name in sorted(old.keys() & new.keys()):
            out += _changed(kind, name, old[name], new[name])
    return out


def check_spec(store: FeatureStore, spec: Mapping[str, Any]) -> SpecCheck:
    """Compare a logged ``spec`` with its feature service as registered in ``store`` now (the
    registry is re-read). A hash that differs while every listed field agrees means a definition
    changed in something the spec does not list (a transformation's code, a source's options)."""
    name = spec["feature_service"]["name"]
    store.refresh_registry()
    try:
        current = service_spec(store, name)
    except UserError:
        return SpecCheck(name, spec["definitions_sha256"], None, (f"feature service {name} is no longer registered",))
    differences = spec_differences(spec, current)
    if current["definitions_sha256"] != spec["definitions_sha256"] and not differences:
        differences.append("a registered definition changed outside the fields the spec lists: an on-demand "
                           "transformation's code or a source's options")
    if current["definitions_sha256"] == spec["definitions_sha256"] and differences:
        differences.insert(0, "the logged spec was edited: its content differs although its hash matches")
    return SpecCheck(name, spec["definitions_sha256"], current["definitions_sha256"], tuple(differences))


def check_run(store: FeatureStore, run_id: str, tracking_uri: str | None = None) -> SpecCheck:
    """``check_spec`` for the spec logged with run ``run_id`` (tracking URI: ``tracking_uri``, else
    ``store``'s MLflow configuration, else MLflow's current one)."""
    if tracking_uri is None and store.config.mlflow is not None:
        tracking_uri = store.config.mlflow.get_tracking_uri()
    return check_spec(store, read_spec_from_run(run_id, tracking_uri))
