"""MLflow shows the model: each registered version is an MLflow logged model of its training run, with
the ONNX flavor, signature, input example, test metrics, plots and model card, read back here with
MLflow's own readers, embedded (SQLite under MLSPEC_HOME) and against a real `mlflow server`."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from tests.registry.mlflow.mlflow_testkit import tiny_onnx_model

from mlspec.registry.mlflow_connection import mlflow_client, resolve_connection
from mlspec.registry.mlflow_embedded import embedded_dir
from mlspec.registry.mlflow_registry import MlflowRegistry
from mlspec.storage import open_store
from mlspec.tracking import TrainingTracker

MEANS = [5.8, 3.05, 3.76, 1.2]
INPUT_SCHEMA = {
    "name": "x",
    "datatype": "FP32",
    "shape": [-1, 4],
    "features": [
        {"name": n, "dtype": "FP32", "min": 0.0, "max": 8.0, "mean": m, "std": 1.0, "missing": 0}
        for n, m in zip(("sepal_length", "sepal_width", "petal_length", "petal_width"), MEANS, strict=True)
    ],
}
OUTPUT_SCHEMA = {"task": "regression", "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the bytes are not looked at, only carried
CARD = "# iris\n\nTest accuracy 0.97.\n"
CURVE = [0.9, 0.5, 0.3]




def publish_with_everything(store_uri: str, name: str, run_id: str):
    """A version folder as the pipeline publishes it, with the Models page's plots and model card."""
    files = {
        "model.onnx": tiny_onnx_model(2.0),
        "input_schema.json": json.dumps(INPUT_SCHEMA).encode(),
        "output_schema.json": json.dumps(OUTPUT_SCHEMA).encode(),
        "metrics.json": json.dumps({"accuracy": 0.97, "f1": 0.96}).encode(),
        "confusion_matrix.png": PNG,
        "training_curves.png": PNG,
        "model_card.md": CARD.encode(),
    }
    return open_store(store_uri).publish_version(name, files, run_id=run_id)


def train(connection: str | None, name: str, run_id: str) -> str:
    """A finished training run as the train and evaluate tasks leave it: curves per epoch, test metrics."""
    tags = {"dag_id": name, "airflow_run_id": run_id, "task_try": "1"}
    with TrainingTracker(connection, name, run_name=f"train-{run_id}", tags=tags) as tracker:
        tracker.log_params({"n_estimators": 100})
        for epoch, loss in enumerate(CURVE):
            tracker.log_epoch(epoch, {"loss": loss, "accuracy": 1 - loss / 3, "val_accuracy": 1 - loss / 2})
    tracker_client = tracker._client
    tracker_client.log_metric(tracker.run_id, "test_accuracy", 0.97, step=0)  # what evaluate adds
    return tracker.run_id


def request_for(publisher, published, **overrides):
    return publisher.request(
        published, metrics={"accuracy": 0.97, "f1": 0.96}, input_schema=INPUT_SCHEMA,
        output_schema=OUTPUT_SCHEMA, task="regression", **overrides,
    )


def read_back(tracking_uri: str, name: str, entry, training_run: str, published, tmp_path: Path) -> None:
    """Everything MLflow shows of the version, read with MLflow's public readers."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = client.get_model_version(name, entry.registry_version)
    assert mv.source.startswith("models:/m-"), mv.source
    model_id = mv.source.removeprefix("models:/")
    assert mv.run_id == training_run
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == training_run and str(logged.status) == "READY"
    assert logged.tags["mlspec.version"] == str(published.version)
    assert json.loads(logged.tags["mlflow.modelVersions"]) == [{"name": name, "version": str(mv.version)}]
    assert logged.params["n_estimators"] == "100"
    assert {m.key: m.value for m in logged.metrics} == pytest.approx({"test_accuracy": 0.97, "test_f1": 0.96})

    # The signature and the input example, as MLflow itself reads them from the registered version.
    info = mlflow.models.get_model_info(f"models:/{name}/{mv.version}")
    assert info.flavors.keys() >= {"onnx", "python_function"}
    assert json.loads(info.signature.to_dict()["inputs"]) == [
        {"type": "tensor", "name": "x", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}
    ]
    assert json.loads(info.signature.to_dict()["outputs"]) == [
        {"type": "tensor", "name": "y", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}
    ]
    assert info.saved_input_example_info["artifact_path"] == "input_example.json"
    # The model's files are the store's, byte for byte, beside the MLmodel file and the input example.
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{model_id}", dst_path=str(tmp_path / "model")))
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert names >= {"MLmodel", "model.onnx", "input_example.json", "manifest.json", "input_schema.json",
                     "metrics.json", "confusion_matrix.png", "training_curves.png", "model_card.md"}
    assert hashlib.sha256((folder / "model.onnx").read_bytes()).hexdigest() == published.files["model.onnx"]
    example = json.loads((folder / "input_example.json").read_text())
    assert len(example) == 1 and example[0] == pytest.approx(MEANS)

    # MLflow's pyfunc loads the registered version and answers the example.
    model = mlflow.pyfunc.load_model(f"models:/{name}/{mv.version}")
    answer = model.predict(np.asarray(example, dtype=np.float32))
    answer = answer["y"] if isinstance(answer, dict) else answer
    assert np.asarray(answer).reshape(-1).tolist() == pytest.approx([2 * m for m in MEANS], rel=1e-6)

    # The run: training curves keep their names and steps, test metrics are their own, plots and card are there.
    run = client.get_run(training_run)
    curve = sorted(client.get_metric_history(training_run, "loss"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in curve] == list(enumerate(CURVE))
    assert len(client.get_metric_history(training_run, "accuracy")) == len(CURVE)
    assert run.data.metrics["test_accuracy"] == pytest.approx(0.97)
    assert run.data.metrics["test_f1"] == pytest.approx(0.96)
    assert model_id in {o.model_id for o in run.outputs.model_outputs}
    run_files = {a.path for a in client.list_artifacts(training_run)}
    assert run_files >= {"confusion_matrix.png", "training_curves.png", "model_card.md"}
    card = client.download_artifacts(training_run, "model_card.md", str(tmp_path / "card"))
    assert Path(card).read_text() == CARD


@pytest.fixture
def global_uri(monkeypatch):
    """MLflow's module-level readers (get_model_info, pyfunc) take their URI from the environment."""

    def point(uri: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)

    return point


def test_embedded_version_is_a_logged_model_with_signature_metrics_and_artifacts(
    publisher, unique_name, global_uri, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path / ".")  # nothing may land in the worker's working directory
    workdir = sorted(tmp_path.iterdir())
    tracking_uri = resolve_connection(None).tracking_uri
    global_uri(tracking_uri)
    name = unique_name("iris")
    run_id = "manual__2026-03-01T00:00:00+00:00"
    training_run = train(None, name, run_id)
    published = publish_with_everything(publisher.store_uri, name, run_id)

    registry = MlflowRegistry()
    entry = registry.register(request_for(publisher, published))

    assert entry.created and entry.url == tracking_uri  # no MLflow UI is known for the embedded store
    (tmp_path / "downloads").mkdir()
    read_back(tracking_uri, name, entry, training_run, published, tmp_path / "downloads")

    # A retried register task finds its version and logs nothing new.
    again = MlflowRegistry().register(request_for(publisher, published))
    assert again == replace(entry, created=False)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    assert len(client.search_model_versions(f"name = '{name}'")) == 1
    experiment = client.get_experiment_by_name(f"mlspec/{name}")
    assert len(client.search_logged_models([experiment.experiment_id])) == 1

    # No stray ./mlruns or ./mlflow.db; experiment 0 keeps its artifacts under MLSPEC_HOME.
    assert sorted(p for p in tmp_path.iterdir() if p.name != "downloads") == workdir
    default = client.get_experiment("0")
    assert default.artifact_location.startswith((embedded_dir() / "artifacts").as_uri())


def test_a_retry_after_the_model_was_logged_reuses_it(publisher, unique_name, global_uri) -> None:
    """The first try died between logging the model and creating the version (no training run tracked)."""
    tracking_uri = resolve_connection(None).tracking_uri
    global_uri(tracking_uri)
    name = unique_name("iris")
    published = publish_with_everything(publisher.store_uri, name, "manual__half")
    request = request_for(publisher, published)
    registry = MlflowRegistry()
    _, first_run, first = registry._source_for(request, None)  # the first try, up to its crash

    entry = MlflowRegistry().register(request)

    mv = registry.client.get_model_version(name, entry.registry_version)
    assert mv.source == f"models:/{first.model_id}" and mv.run_id == first_run
    assert registry.client.get_run(first_run).data.tags["mlspec.role"] == "registration"
    experiment = registry.client.get_experiment_by_name(f"mlspec/{name}")
    assert len(registry.client.search_logged_models([experiment.experiment_id])) == 1


def test_a_fresh_embedded_store_has_its_default_experiment_under_mlspec_home(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    default = mlflow_client(resolve_connection(None)).get_experiment("0")
    assert default.artifact_location == (tmp_path / "home" / "mlflow" / "artifacts" / "0").as_uri()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_server_version_is_a_logged_model_and_links_to_the_ui(
    mlflow_server, publisher, unique_name, global_uri, tmp_path, monkeypatch
) -> None:
    ui = "https://mlflow.example.com/"
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_UI", mlflow_server.connection_json(extra={"ui_url": ui}))
    global_uri(mlflow_server.url)
    name = unique_name("iris")
    run_id = "scheduled__2026-03-02T00:00:00+00:00"
    training_run = train("mlflow_ui", name, run_id)
    published = publish_with_everything(publisher.store_uri, name, run_id)

    entry = MlflowRegistry("mlflow_ui").register(request_for(publisher, published))

    assert entry.url == f"https://mlflow.example.com/#/models/{name}/versions/{entry.registry_version}"
    read_back(mlflow_server.url, name, entry, training_run, published, tmp_path)
    again = MlflowRegistry("mlflow_ui").register(request_for(publisher, published))
    assert again == replace(entry, created=False)


def test_registry_link_is_on_the_register_task_only_when_a_ui_is_known(tmp_path, monkeypatch) -> None:
    """The register task of a spec with an MLflow server links to the version's page; with the embedded
    MLflow (no UI) the task has no link at all, so Airflow shows no empty "Extra Links" heading."""
    from tests.fixtures.paths import SPECS

    from mlspec.compiler import build_dag
    from mlspec.links import RegistryLink
    from mlspec.spec import load_spec

    embedded = build_dag(load_spec(SPECS / "iris-forest.yaml")).get_task("register")
    assert tuple(embedded.operator_extra_links) == ()

    path = tmp_path / "iris-forest.yaml"
    path.write_text((SPECS / "iris-forest.yaml").read_text() + "registry: {backend: mlflow, connection: mlflow_ui}\n")
    served = build_dag(load_spec(path)).get_task("register")
    assert [type(link) for link in served.operator_extra_links] == [RegistryLink]

    link = RegistryLink()
    url = "https://mlflow.example.com/#/models/iris/versions/3"
    monkeypatch.setattr("mlspec.links._returned", lambda ti_key: {"url": url})
    assert link.get_link(served, ti_key=None) == url
    monkeypatch.setattr("mlspec.links._returned", lambda ti_key: {"url": "sqlite:////x/mlflow.db"})
    assert link.get_link(served, ti_key=None) == ""


def test_a_tuned_version_is_logged_to_the_winning_trials_run(publisher, unique_name, global_uri) -> None:
    tracking_uri = resolve_connection(None).tracking_uri
    global_uri(tracking_uri)
    name = unique_name("iris")
    run_id = "manual__tuned"
    trial_runs = []
    for trial in (0, 1):  # trial 1 finishes last, trial 0 wins
        tags = {"dag_id": name, "airflow_run_id": run_id, "mlspec.trial": str(trial)}
        with TrainingTracker(None, name, run_name=f"train-{trial}", tags=tags) as tracker:
            tracker.log_epoch(0, {"val_accuracy": 0.9 - trial / 10})
        trial_runs.append(tracker.run_id)
    published = publish_with_everything(publisher.store_uri, name, run_id)

    entry = MlflowRegistry().register(request_for(publisher, published, best_trial=0))

    mv = MlflowRegistry().client.get_model_version(name, entry.registry_version)
    assert mv.run_id == trial_runs[0]
    assert MlflowRegistry().client.get_logged_model(mv.source.removeprefix("models:/")).source_run_id == trial_runs[0]
