"""model_card.md and the pages without Airflow: what a card says, the version it names, the example request,
and the page parts for regression, a hostile spec and backends that did not answer."""

from __future__ import annotations

import json
import shlex

import pytest
from tests.fixtures.paths import SPECS
from tests.ui.app.ui_app_testkit import Page

from mlspec.inference_protocol import infer_url
from mlspec.model_card import (
    curl_example,
    example_request,
    expected_version,
    main_metric,
    render_model_card,
)
from mlspec.spec import load_spec, load_spec_text
from mlspec.ui import data, pages

INPUT_SCHEMA = {
    "name": "input",
    "datatype": "FP32",
    "shape": [-1, 3],
    "features": [
        {"name": "age", "dtype": "FP32", "min": 0.1, "max": 0.9, "mean": 0.512345678, "std": 0.2, "missing": 0},
        {"name": "bmi | x", "dtype": "FP32", "min": -1, "max": 1, "mean": -0.25, "std": 0.5, "missing": 2},
        {"name": "bp", "dtype": "FP32", "min": None, "max": None, "mean": None, "std": None, "missing": 5},
    ],
}
OUTPUT_SCHEMA = {"task": "regression", "outputs": [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}], "class_names": []}


@pytest.fixture(autouse=True)
def home(mlspec_home, monkeypatch):
    monkeypatch.setenv("MLSPEC_SERVER_URL", "http://127.0.0.1:8555")
    return mlspec_home


def test_the_card_says_what_the_version_is():
    spec = load_spec(SPECS / "diabetes.yaml")
    evaluation = {
        "metrics": {"rmse": 57.5248, "mae": 45.65, "r2": 0.3889},
        "test_samples": 89,
        "champion": {"decision": "champion_holds", "metric": "rmse", "challenger": 60.1, "champion": 57.5, "champion_version": 3, "min_delta": 0.0},
    }
    card = render_model_card(
        spec, version=4, evaluation=evaluation, input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA, dag_id="diabetes",
        run_id="manual__2026-01-01T00:00:00+00:00", plots=["residuals.png", "training_curves.png"], stored_uri="file:///m/diabetes/4",
    )
    lines = card.splitlines()
    assert lines[0] == "# diabetes, version 4"
    assert f"| spec hash | `{spec.spec_hash}` |" in lines
    # Spec-derived text is escaped, never put in code spans (which renderers show raw; issue 17).
    assert "| data source | builtin:diabetes |" in lines
    assert "| DAG run | diabetes / manual__2026-01-01T00:00:00+00:00 |" in lines
    assert any(line.startswith("| model | scikit-learn gradient_boosting (") for line in lines)
    assert "| rmse | 57.5248 | ≤ 65 |" in lines and "| mae | 45.65 | — |" in lines
    assert "## Test metrics (89 samples)" in lines
    assert any("did not beat the production version" in line and "production version 3's 57.5" in line for line in lines)
    assert "| bmi \\| x | -1 | 1 | -0.25 | 0.5 | 2 |" in lines  # a pipe in a name cannot break the table
    assert "| bp | — | — | — | — | 5 |" in lines
    assert "- [residuals.png](residuals.png)" in lines
    (curl,) = [line for line in lines if line.startswith("curl ")]
    command = shlex.split(curl)
    assert command[command.index("-X") + 2] == "http://127.0.0.1:8555/v2/models/diabetes/infer"
    body = json.loads(command[command.index("-d") + 1])
    assert body == {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0.512346, -0.25, 0.0]}]}
    # The same inputs give the same bytes: a retried store publishes the same checksum.
    again = render_model_card(
        spec, version=4, evaluation=evaluation, input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA, dag_id="diabetes",
        run_id="manual__2026-01-01T00:00:00+00:00", plots=["residuals.png", "training_curves.png"], stored_uri="file:///m/diabetes/4",
    )
    assert again == card


def test_a_keras_card_lists_the_layers_and_a_kserve_card_says_where_the_endpoint_is():
    text = (SPECS / "digits.yaml").read_text()
    kserve = "serving:\n  platform: kserve\n  namespace: models\n  runtime: kserve-ovms\n"
    text = text.replace("serving:\n  platform: local\n  runtime: onnxruntime\n", kserve)
    spec = load_spec_text(text.replace("uri: file://models", "uri: s3://models/mlspec"))
    card = render_model_card(
        spec, version=1, evaluation={"metrics": {"accuracy": 0.97}, "champion": {"decision": "no_champion"}},
        input_schema=INPUT_SCHEMA, output_schema={"outputs": [], "class_names": ["0", "1"]}, dag_id="digits", run_id="r",
    )
    assert "TensorFlow/Keras, 5 layers: conv2d(" in card
    assert 'curl -s -X POST "$ENDPOINT/v2/models/digits/infer"' in card
    assert "kubectl get inferenceservice digits -n models" in card
    assert "there was no production version to compare with" in card


def test_the_card_names_the_version_store_will_publish(tmp_path):
    from mlspec.storage import open_store

    store = open_store((tmp_path / "models").as_uri())
    assert expected_version(store, "m", "dag/run-a", 1) == 1
    assert expected_version(store, "m", "dag/run-a", 5) == 5  # above every number the registry knows
    store.publish_version("m", {"model.onnx": b"a"}, run_id="dag/run-a")
    assert expected_version(store, "m", "dag/run-a", 1) == 1  # a retry: the version it claimed
    assert expected_version(store, "m", "dag/run-b", 1) == 2
    assert store.publish_version("m", {"model.onnx": b"b"}, run_id="dag/run-b").version == 2


def test_infer_urls_and_example_request():
    assert infer_url("http://h:1/", "m") == "http://h:1/v2/models/m/infer"
    assert infer_url("http://h:1", "m", 3) == "http://h:1/v2/models/m/versions/3/infer"
    assert example_request({"features": [{"mean": 1}, {"mean": 2}], "shape": [-1, 2]})["inputs"][0]["shape"] == [1, 2]
    command = shlex.split(curl_example("http://h/v2/models/m/infer", {"name": "it's", "features": []}))
    assert json.loads(command[command.index("-d") + 1])["inputs"][0]["name"] == "it's"  # quoted for the shell
    assert main_metric(load_spec(SPECS / "diabetes.yaml")) == "rmse"


def regression_status() -> data.ModelStatus:
    spec = load_spec(SPECS / "diabetes.yaml")
    versions = [
        data.VersionInfo(1, registered=True, in_store=True, state="archived", metrics={"rmse": 61.0, "mae": 50.0, "r2": 0.3}),
        data.VersionInfo(2, registered=True, in_store=True, state="production", metrics={"rmse": 57.5, "mae": 45.6, "r2": 0.39},
                         champion={"decision": "challenger_wins", "metric": "rmse", "challenger": "57.5", "champion": "61.0", "champion_version": "1"}),
        data.VersionInfo(3, registered=True, in_store=False, state="candidate", metrics={"rmse": 59.0},
                         champion={"decision": "champion_holds", "metric": "rmse", "challenger": "59.0", "champion": "57.5", "champion_version": "2"}),
    ]
    return data.ModelStatus(spec, production=2, history=[1, 2], served=1, versions=versions, registry_ok=True, store_ok=True,
                            serving_ok=True)


def test_the_model_page_of_a_regressor_with_drift():
    page = Page(pages.model_page("/mlspec", regression_status(), "curl -s http://x"))
    status = page.within("status").text()
    assert "drift" in status and "serving answers with version 1 but the registry says production is version 2" in status
    chart = page.within("metric-chart")
    points = {g["attrs"]["data-version"]: float(g["attrs"]["data-value"]) for g in chart.find() if g["tag"] == "g"}
    assert points == {"1": 61.0, "2": 57.5, "3": 59.0}
    assert "threshold max 65" in chart.text()
    versions = page.within("versions")
    assert "beat production (rmse 57.5 vs v1 61)" in versions.text() and "lost to production" in versions.text()
    assert "files gone from the store" in versions.text()
    assert [a["attrs"]["href"] for a in versions.find() if a["tag"] == "a"][0] == "/mlspec/models/diabetes/versions/3"


def test_a_regression_card_shows_residuals_and_says_what_did_not_answer():
    status = regression_status()
    status.problems.append("serving unavailable: serving (the local model server): no model server answers")
    card = data.VersionCard(
        status, 2, status.version(2), manifest={"files": {"residuals.png": "ab" * 32, "model_card.md": "cd" * 32}},
        evaluation={"rmse": 57.5, "residuals": {"mean": -0.55, "std": 57.52, "max_abs": 161.1}},
        input_schema=INPUT_SCHEMA, output_schema=OUTPUT_SCHEMA,
    )
    page = Page(pages.card_page("", card, None, None))
    assert "no model server answers" in page.within("backend-problems").text()
    assert "max_abs 161.1" in page.within("residuals").text()
    assert [img["attrs"]["src"] for img in page.find() if img["tag"] == "img"] == ["/models/diabetes/versions/2/files/residuals.png"]
    assert not page.find(id="confusion-matrix") and not page.find(id="curl")
    assert "trained from another revision of the spec" in page.within("lineage").text()
    metrics = [c["attrs"]["data-metric"] for c in page.within("metrics").find() if "data-metric" in c["attrs"]]
    assert metrics == ["rmse", "mae", "r2"]  # the spec's order


def test_spec_errors_and_other_text_are_escaped():
    broken = data.BrokenSpec("specs/<b>.yaml", "x", ("specs/<b>.yaml:1:1: metadata.name: '<script>alert(1)</script>'",))
    html = pages.spec_errors_panel([broken], "specs")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html
    assert pages.e('"><img src=x>') == "&quot;&gt;&lt;img src=x&gt;"


def test_audit_entries_settings_and_notes_are_escaped():
    """Everything on the new parts comes from the registry or a spec: actor, reason, run id, settings, problems."""
    from mlspec.registry.base import ProductionChange

    status = regression_status()
    hostile = "<script>alert(1)</script>"
    status.changes = [ProductionChange(at="2026-12-07T03:45:00Z", actor=hostile, action="deploy", from_version=1, to_version=2,
                                       reason=f"<img src=x onerror=alert(1)>{hostile}", run_id=hostile,
                                       run_url=f"http://h/dags/{hostile}/runs/{hostile}")]
    status.changes_ok = True
    status.problems.append(f"registry unavailable: {hostile}")
    card = data.VersionCard(status, 2, status.version(2))
    card.settings = data.Settings(2, {hostile: hostile}, "tracking", hostile)
    html = pages.card_page("", card, None, None) + pages.model_page("", status, None) + pages.notes(status.problems)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_the_model_line_shows_what_the_run_trained_with_not_only_the_spec():
    """A trigger-form value (n_estimators=3) is what the version was trained with; a key the spec does not set
    in model.params (not a run parameter) changes nothing."""
    from mlspec.model_card import model_summary
    from mlspec.spec import load_spec

    spec = load_spec(SPECS / "iris-forest.yaml")
    assert model_summary(spec) == "scikit-learn random_forest (max_depth=6, n_estimators=100, random_state=0)"
    used = model_summary(spec, {"n_estimators": "3", "trials": 4})
    assert used == "scikit-learn random_forest (max_depth=6, n_estimators=3, random_state=0)"
