"""A real MLflow round trip: a model trained on ``training_frame`` output is logged with its feature
service spec to a local tracking store (SQLite under tmp), read back with the MLflow client, and
checked against the registered definitions; a changed definition is a mismatch
(``featurelib/model_registry.py``, docs/TRAINING.md).

Uses the shared ``feature_repo`` read-only: definition changes go to a copy of its registry."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from featurelib import paths
from featurelib.model_registry import (  # MLflow through it: imported after its telemetry switch
    FEAST_FEATURES_ARTIFACT,
    HASH_TAG,
    SPEC_ARTIFACT,
    LogisticModel,
    MlflowClient,
    check_run,
    check_spec,
    evaluate,
    fit_logistic,
    local_tracking_uri,
    log_model_with_spec,
    mlflow,
    mlflow_store,
    model_features,
    read_spec_from_run,
)
from featurelib.repo import load_store
from featurelib.spec import service_spec
from featurelib.training import training_frame, transaction_labels
from tests.conftest import ROOT, Repo, blocks, copy_repo, feast_cli, run_example

SERVICE = "fraud_detection"


@dataclass
class Trained:
    uri: str
    run_id: str
    labels: pd.DataFrame
    frame: pd.DataFrame
    model: LogisticModel
    expected: dict  # the spec as registered, computed by a store without MLflow
    repo_before: dict  # the shared repository's files before this module ran


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def tracking_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def trained(feature_repo: Repo, tracking_dir: Path) -> Trained:
    """One training run through the library: every fraud row and about 300 others (a stride over time)."""
    before = snapshot(feature_repo.path)
    uri = local_tracking_uri(tracking_dir)
    store = mlflow_store(feature_repo.path, uri)
    labels = transaction_labels(paths.raw_dir(feature_repo.path))
    normal = labels[~labels.is_fraud]
    labels = pd.concat([labels[labels.is_fraud], normal.iloc[:: max(1, len(normal) // 300)]])
    labels = labels.sort_values(["event_timestamp", "txn_id"]).reset_index(drop=True)
    with store.mlflow.start_run(run_name="test_mlflow") as run:
        frame = training_frame(store, labels, store.get_feature_service(SERVICE))
        model = fit_logistic(frame, model_features(service_spec(store, SERVICE)))
        run_id = log_model_with_spec(store, model, SERVICE, metrics=evaluate(model, frame))
    assert run_id == run.info.run_id
    return Trained(uri, run_id, labels, frame, model, service_spec(feature_repo.store(), SERVICE), before)


def test_the_run_holds_the_spec_its_hash_and_feasts_tags(trained: Trained, tracking_dir: Path) -> None:
    client = MlflowClient(trained.uri)
    run = client.get_run(trained.run_id)
    expected = trained.expected
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "realtime_features"
    assert client.get_experiment(run.info.experiment_id).artifact_location == (tracking_dir / "artifacts").as_uri()
    tags = run.data.tags
    assert tags[HASH_TAG] == expected["definitions_sha256"]
    assert tags["feast.feature_service"] == SERVICE
    assert tags["feast.project"] == "realtime_features"
    # Set by Feast's own integration while training_frame ran inside the run:
    assert sorted(tags["feast.feature_refs"].split(",")) == sorted(f["ref"] for f in expected["features"])
    assert tags["feast.entity_count"] == str(len(trained.labels))
    assert {a.path for a in client.list_artifacts(trained.run_id)} >= {SPEC_ARTIFACT, FEAST_FEATURES_ARTIFACT}
    logged = json.loads(Path(client.download_artifacts(trained.run_id, SPEC_ARTIFACT, str(tracking_dir / "dl"))).read_text())
    assert logged == expected
    refs = json.loads(Path(client.download_artifacts(trained.run_id, FEAST_FEATURES_ARTIFACT, str(tracking_dir / "dl"))).read_text())
    assert sorted(refs) == sorted(f["ref"] for f in expected["features"])
    assert run.data.params["model_features"] == str(len(trained.model.features)) == str(len(model_features(expected)))
    assert trained.labels.is_fraud.sum() >= 5 and (~trained.labels.is_fraud).sum() >= 100
    assert run.data.metrics["rows"] == len(trained.labels)
    assert run.data.metrics["auc"] > 0.8  # the features separate fraud: they were joined to the right rows


def test_the_logged_model_predicts_as_the_trained_one(trained: Trained) -> None:
    mlflow.set_tracking_uri(trained.uri)
    loaded = mlflow.pyfunc.load_model(f"runs:/{trained.run_id}/model")
    predicted = np.asarray(loaded.predict(trained.frame))
    np.testing.assert_allclose(predicted, trained.model.predict_proba(trained.frame), rtol=1e-12)
    assert predicted.shape == (len(trained.frame),) and predicted.min() >= 0 and predicted.max() <= 1 and predicted.std() > 0
    assert loaded.metadata.metadata == {"feature_service": SERVICE, "definitions_sha256": trained.expected["definitions_sha256"]}


def test_the_logged_spec_matches_the_registered_definitions(trained: Trained, feature_repo: Repo) -> None:
    assert read_spec_from_run(trained.run_id, trained.uri) == trained.expected
    check = check_run(feature_repo.store(), trained.run_id, trained.uri)
    assert check.matches, check.describe()
    assert check.logged_sha256 == check.registered_sha256 == trained.expected["definitions_sha256"]
    assert check.differences == ()
    assert check.describe() == f"{SERVICE}: definitions match the registry (sha256 {check.logged_sha256[:12]})"


def clone(feature_repo: Repo, dest: Path) -> Path:
    """The shared repository as another checkout would be: the same definitions applied in another
    directory (its own registry), the same events and feature files (linked)."""
    repo = copy_repo(dest)
    (repo / "data").mkdir()
    for data in (paths.raw_dir, paths.features_dir):
        data(repo).symlink_to(data(feature_repo.path), target_is_directory=True)
    feast_cli(repo, "apply")
    return repo


def test_a_changed_definition_in_the_registry_is_a_mismatch(trained: Trained, feature_repo: Repo, tmp_path: Path) -> None:
    repo = clone(feature_repo, tmp_path / "repo")  # the shared repository's registry stays as it is
    store = load_store(repo)
    assert check_run(store, trained.run_id, trained.uri).matches
    view = store.get_feature_view("device_activity_24h")
    view.ttl = timedelta(days=14)
    store.registry.apply_feature_view(view, store.project, commit=True)

    check = check_run(store, trained.run_id, trained.uri)
    assert not check.matches
    assert check.registered_sha256 != check.logged_sha256 == trained.expected["definitions_sha256"]
    assert check.differences == ("view device_activity_24h: ttl_seconds 604800 -> 1209600",)
    assert check.describe().splitlines()[0].startswith(f"{SERVICE}: MISMATCH")
    assert check_run(feature_repo.store(), trained.run_id, trained.uri).matches  # the shared registry is unchanged


def test_an_edited_or_stale_spec_is_a_mismatch(trained: Trained, feature_repo: Repo) -> None:
    store = feature_repo.store()
    spec = read_spec_from_run(trained.run_id, trained.uri)
    ref = "transaction_stats_5m:txn_count_5m"

    older = copy.deepcopy(spec)  # a model trained when txn_count_5m was a float, and another feature existed
    next(f for f in older["features"] if f["ref"] == ref)["type"] = "Float64"
    older["features"].append({**older["features"][0], "name": "retired", "ref": "transaction_stats_5m:retired"})
    older["definitions_sha256"] = "0" * 64
    check = check_spec(store, older)
    assert not check.matches and check.registered_sha256 == spec["definitions_sha256"]
    assert set(check.differences) == {f"feature {ref}: type 'Float64' -> 'Int64'", "feature transaction_stats_5m:retired removed"}
    assert "MISMATCH" in check.describe() and ref in check.describe()

    same_fields = {**spec, "definitions_sha256": "1" * 64}  # e.g. a transformation's code changed
    check = check_spec(store, same_fields)
    assert not check.matches and len(check.differences) == 1 and "outside the fields" in check.differences[0]

    edited = copy.deepcopy(spec)  # content edited, hash kept
    edited["sources"][0]["ttl_seconds"] = 1
    check = check_spec(store, edited)
    assert not check.matches and "edited" in check.differences[0] and len(check.differences) == 2

    gone = copy.deepcopy(spec)
    gone["feature_service"]["name"] = "retired_service"
    check = check_spec(store, gone)
    assert not check.matches and check.registered_sha256 is None


def test_a_run_without_a_consistent_spec_is_refused(trained: Trained) -> None:
    client = MlflowClient(trained.uri)
    experiment_id = client.get_run(trained.run_id).info.experiment_id
    bare = client.create_run(experiment_id).info.run_id
    with pytest.raises(ValueError, match="has no feature_spec.json"):
        read_spec_from_run(bare, trained.uri)
    tampered = client.create_run(experiment_id).info.run_id
    client.log_dict(tampered, trained.expected, SPEC_ARTIFACT)
    client.set_tag(tampered, HASH_TAG, "0" * 64)
    with pytest.raises(ValueError, match="tag feature_spec.definitions_sha256='0000"):
        read_spec_from_run(tampered, trained.uri)
    for run_id in (bare, tampered):
        client.set_terminated(run_id)


def test_fit_logistic_refuses_a_single_label() -> None:
    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0], "is_fraud": [False, False, False]})
    with pytest.raises(ValueError, match="both present"):
        fit_logistic(rows, ["x"])
    rows["is_fraud"] = [False, True, True]
    model = fit_logistic(rows, ["x"])
    assert model.predict_proba(rows)[0] < 0.5 < model.predict_proba(rows)[2]


def test_the_training_doc_example_runs(trained: Trained, feature_repo: Repo, tracking_dir: Path, tmp_path: Path) -> None:
    """docs/TRAINING.md's MLflow example, as written, in a clone of the shared repository (applied in
    its own directory, its data linked) whose data/mlflow is this module's tracking store."""
    (code,) = [body for body in blocks(ROOT / "docs" / "TRAINING.md", "python") if "log_model_with_spec" in body]
    repo = clone(feature_repo, tmp_path / "repo")
    (repo / "data" / "mlflow").symlink_to(tracking_dir, target_is_directory=True)
    before = {p.name for p in repo.iterdir()}
    result = run_example(code, repo)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"{SERVICE}: definitions match the registry" in out and "txn_count_5m" in out
    assert {p.name for p in repo.iterdir()} == before  # no ./mlruns, no ./mlflow.db
    client = MlflowClient(trained.uri)
    experiment = client.get_experiment_by_name("realtime_features")
    (run,) = client.search_runs([experiment.experiment_id], "attributes.run_name = 'fraud-logistic'")
    assert run.data.tags[HASH_TAG] == trained.expected["definitions_sha256"]
    assert run.data.tags["feast.feature_service"] == SERVICE
    assert run.data.params["feature_service"] == SERVICE


def test_the_shared_repository_is_left_as_it_was(trained: Trained, feature_repo: Repo) -> None:
    """Last in this module: nothing above wrote into the shared ``feature_repo``."""
    assert snapshot(feature_repo.path) == trained.repo_before
