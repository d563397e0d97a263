"""The Models app (mlspec.ui) against what two real runs left: the store, the embedded MLflow registry and
the model server. Every number on a page is checked against the registry, every plot against the manifest."""

from __future__ import annotations

import hashlib
import json
import shlex
import socket
import time

import httpx
import pytest
from tests.e2e.e2e_testkit import task_states, xcom
from tests.ui.app.ui_app_testkit import Page, forest_spec, get_page, registry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(two_runs):
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with TestClient(create_app(timeout_s=20)) as test_client:
        yield test_client


def version_dir(spec, version: int):
    from mlspec.storage import resolve_file_uri

    return resolve_file_uri(spec.storage.uri) / spec.name / str(version)


def test_the_two_runs(two_runs):
    assert str(two_runs.first.state) == "success", task_states(two_runs.first)
    assert str(two_runs.second.state) == "success", task_states(two_runs.second)
    assert xcom(two_runs.second, "evaluate")["champion"]["decision"] == "champion_holds"
    # evaluate drew the plots; store published them and the model card, checksummed in the manifest.
    assert sorted(xcom(two_runs.first, "evaluate")["plots"]) == ["confusion_matrix.png", "training_curves.png"]
    manifest = json.loads((version_dir(two_runs.second_spec, 2) / "manifest.json").read_text())
    assert {"confusion_matrix.png", "training_curves.png", "model_card.md"} <= set(manifest["files"])
    assert registry().production_version("ui-iris") == 1


def test_overview_lists_the_model_with_the_registry_production_and_what_serves(client, two_runs):
    page = get_page(client, "/")
    (row,) = page.find(data_model="ui-iris")
    models = page.within("models")
    assert "version 1" in models.find(data_field="production")[0]["text"]
    assert "version 1" in models.find(data_field="serving")[0]["text"]
    assert models.find(data_field="latest")[0]["text"] == "2"
    value = float(models.find(data_field="production-metric")[0]["attrs"]["data-value"])
    assert value == registry().version_record("ui-iris", 1).metrics["accuracy"]
    assert not page.find(id="spec-errors")


def test_model_page_numbers_match_the_registry(client, two_runs):
    page = get_page(client, "/models/ui-iris")
    status = page.within("status").text()
    assert "version 1" in status and "in sync" in status
    versions = page.within("versions")
    for number in (1, 2):
        record = registry().version_record("ui-iris", number)
        cells = {c["attrs"]["data-metric"]: float(c["attrs"]["data-value"]) for c in versions.find() if "data-metric" in c["attrs"]
                 and _in_row(versions, number, c)}
        assert cells == record.metrics, number
    states = {int(el["attrs"]["data-version"]): el["text"] for el in versions.find() if el["tag"] == "tr" and "data-version" in el["attrs"]}
    assert "production" in states[1] and "candidate" in states[2]
    champion = [el for el in versions.find(data_field="champion")]
    assert any("lost to production" in el["text"] for el in champion)
    # The chart: one point per version, at the registry's value, production ringed.
    chart = page.within("metric-chart")
    points = {int(g["attrs"]["data-version"]): float(g["attrs"]["data-value"]) for g in chart.find() if g["tag"] == "g"}
    assert points == {n: registry().version_record("ui-iris", n).metrics["accuracy"] for n in (1, 2)}


def _in_row(fragment: Page, number: int, cell: dict) -> bool:
    """Whether `cell` lies inside the <tr data-version=number> of the fragment (document order)."""
    current = None
    for element in fragment.elements:
        if element["tag"] == "tr":
            current = element["attrs"].get("data-version")
        if element is cell:
            return current == str(number)
    return False


def test_the_example_curl_works_against_the_model_server(client, two_runs):
    page = get_page(client, "/models/ui-iris")
    command = shlex.split(page.by_id("curl")["text"])
    url = command[command.index("-X") + 2]
    body = json.loads(command[command.index("-d") + 1])
    assert url == f"{two_runs.server_url}/v2/models/ui-iris/infer"
    answer = httpx.post(url, json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert {o["name"] for o in answer.json()["outputs"]} == {"probabilities", "label"}


@pytest.mark.parametrize("number", [1, 2])
def test_model_card_shows_the_version_as_the_registry_and_store_hold_it(client, two_runs, number):
    page = get_page(client, f"/models/ui-iris/versions/{number}")
    record = registry().version_record("ui-iris", number)
    tags = registry().client.get_model_version("ui-iris", str(number)).tags
    metrics = page.within("metrics")
    shown = {c["attrs"]["data-metric"]: float(c["attrs"]["data-value"]) for c in metrics.find() if "data-metric" in c["attrs"]}
    assert shown == record.metrics
    lineage = page.within("lineage").text()
    for fact in (record.run_id, tags["spec_hash"], tags["data_source"], tags["dag_id"], record.source_uri):
        assert fact in lineage, fact
    folder = version_dir(two_runs.second_spec, number)
    evaluation = json.loads((folder / "metrics.json").read_text())
    matrix = page.within("confusion-matrix")
    counts = [int(td["text"]) for td in matrix.find() if td["tag"] == "td"]
    assert counts == [n for row in evaluation["confusion_matrix"] for n in row]
    assert [th["text"] for th in matrix.find() if th["tag"] == "th"][1:4] == ["setosa", "versicolor", "virginica"]
    schema = json.loads((folder / "input_schema.json").read_text())
    inputs = page.within("input-schema")
    names = [row["text"] for row in inputs.find() if row["tag"] == "td" and not row["attrs"].get("class")]
    assert [f["name"] for f in schema["features"]] == names[::2]  # name, dtype per row
    means = [float(td["attrs"]["data-value"]) for td in inputs.find() if "data-value" in td["attrs"]][2::4]
    assert means == [f["mean"] for f in schema["features"]]
    assert "probabilities" in page.within("output-schema").text()
    files = page.within("files")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {el["attrs"]["data-file"]: el["text"] for el in files.find() if el["tag"] == "code"} == manifest["files"]
    assert "registry differs" not in files.text()
    if number == 2:
        assert page.by_id("champion")["attrs"]["data-decision"] == "champion_holds"
        assert "did not beat the production version" in page.by_id("champion")["text"]
        # Serving answers with version 1: no request to try for version 2 (it answered 404), how to deploy it instead.
        assert not page.find(id="curl")
        assert "mlspec deploy" in page.by_id("deploy-hint")["text"] and "--version 2" in page.by_id("deploy-hint")["text"]
        assert "Never production" in page.by_id("production-story")["text"]
    else:
        command = shlex.split(page.by_id("curl")["text"])
        assert command[command.index("-X") + 2].endswith("/v2/models/ui-iris/infer")
        answer = httpx.post(command[command.index("-X") + 2], json=json.loads(command[command.index("-d") + 1]), timeout=30)
        assert answer.status_code == 200, answer.text
        assert page.by_id("production-story")["text"].startswith("Promoted by the pipeline run ")
    # The settings the run logged: the forest of run 1, the one-split tree of run 2.
    settings = {c["attrs"]["data-setting"]: c["text"] for c in page.within("settings").find() if "data-setting" in c["attrs"]}
    assert settings["estimator"] == ("random_forest" if number == 1 else "decision_tree")


def test_plots_are_pngs_whose_sha256_match_the_manifest_and_the_registry(client, two_runs):
    page = get_page(client, "/models/ui-iris/versions/2")
    images = [el["attrs"]["src"] for el in page.within("plots").find() if el["tag"] == "img"]
    assert [src.rsplit("/", 1)[1] for src in images] == ["confusion_matrix.png", "training_curves.png"]
    manifest = json.loads((version_dir(two_runs.second_spec, 2) / "manifest.json").read_text())
    tags = registry().client.get_model_version("ui-iris", "2").tags
    for src in images:
        response = client.get(src)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
        name = src.rsplit("/", 1)[1]
        digest = hashlib.sha256(response.content).hexdigest()
        assert digest == manifest["files"][name] == tags[f"sha256.{name}"]
    card = client.get("/models/ui-iris/versions/2/files/model_card.md")
    assert card.status_code == 200 and card.text.startswith("# ui-iris, version 2")
    assert hashlib.sha256(card.content).hexdigest() == manifest["files"]["model_card.md"]
    record = registry().version_record("ui-iris", 2)
    assert f"| accuracy | {record.metrics['accuracy']:.6g} |" in card.text


def test_a_file_changed_after_publishing_is_refused(client, two_runs):
    path = version_dir(two_runs.second_spec, 1) / "training_curves.png"
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"tampered")
        response = client.get("/models/ui-iris/versions/1/files/training_curves.png")
        assert response.status_code == 409 and "sha256" in response.text
        assert b"tampered" not in response.content
    finally:
        path.write_bytes(original)
    assert client.get("/models/ui-iris/versions/1/files/training_curves.png").status_code == 200
    for missing in ("/models/ui-iris/versions/1/files/nothing.png", "/models/ui-iris/versions/1/files/.mlspec-claim.json",
                    "/models/ui-iris/versions/9", "/models/nobody"):
        assert client.get(missing).status_code == 404, missing


def test_the_dag_tab_shows_the_model_or_says_there_is_none(client, two_runs):
    page = get_page(client, "/dag/ui-iris")
    assert page.find(id="versions") and "version 1" in page.within("status").text()
    assert "is not compiled from an mlspec spec" in get_page(client, "/dag/mlspec_operations").text()


def test_the_error_panel_shows_every_error_of_a_broken_spec_on_its_own_line(client, two_runs):
    from mlspec.spec import SpecError, load_spec

    broken = two_runs.specs / "broken.yaml"
    text = forest_spec("ui-broken").replace("n_estimators: 100", "n_estimatorz: 100")
    text = text.replace("test: 0.25", "test: 1.5").replace("owner: ml-team", "owner: ml-team\n  colour: blue")
    broken.write_text(text)
    try:
        with pytest.raises(SpecError) as raised:
            load_spec(broken)
        problems = [str(p) for p in raised.value.problems]
        assert len(problems) >= 2
        page = get_page(client, "/")
        panel = page.within("spec-errors")
        (entry,) = panel.find(data_dag_id="ui-broken")
        assert [li["text"] for li in panel.find() if li["tag"] == "li"] == problems
        # The DAG's own tab shows the same errors.
        tab = get_page(client, "/dag/ui-broken").within("spec-errors")
        assert [li["text"] for li in tab.find() if li["tag"] == "li"] == problems
        assert get_page(client, "/").find(data_model="ui-iris")  # the good model is still listed
    finally:
        broken.unlink()


def test_everything_is_escaped(client, two_runs):
    described = two_runs.specs / "hostile.yaml"
    described.write_text(forest_spec("ui-hostile").replace(
        "description: Iris species with a scikit-learn random forest", 'description: "<script>alert(1)</script> & <b>bold</b>"'
    ))
    broken = two_runs.specs / "hostile-broken.yaml"
    broken.write_text(forest_spec("ui-hostile-broken").replace("test: 0.25", "test: <img src=x onerror=alert(1)>"))
    try:
        response = client.get("/")
        assert response.status_code == 200
        assert "<script>" not in response.text and "<img src=x" not in response.text and "<b>bold" not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in response.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in response.text
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script>" not in client.get("/models/ui-hostile").text
    finally:
        described.unlink()
        broken.unlink()


def test_pages_load_when_serving_is_down_or_hangs(two_runs, monkeypatch):
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("MLSPEC_SERVER_URL", f"http://127.0.0.1:{port}")
    client = TestClient(create_app(timeout_s=3))
    for path in ("/", "/models/ui-iris", "/models/ui-iris/versions/1", "/dag/ui-iris"):
        page = get_page(client, path)
        assert "serving unavailable" in page.text(), path
    # The registry and store still answer: production and the numbers are there.
    page = get_page(client, "/models/ui-iris")
    assert "version 1" in page.within("status").text()
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("MLSPEC_SERVER_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        page = get_page(client, "/models/ui-iris")
        assert time.monotonic() - started < 30  # the page waited a few seconds for serving, then said so
        assert "serving unavailable" in page.text() and "version 1" in page.within("status").text()


def test_pages_load_when_the_registry_is_down(two_runs, monkeypatch, tmp_path):
    """A registry connection that does not exist: the page says so and shows the store's metrics."""
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "ui-iris.yaml").write_text(forest_spec("ui-iris", weak=True) + "registry: {backend: mlflow, connection: mlflow_nowhere}\n")
    monkeypatch.setenv("MLSPEC_SPECS_DIR", str(specs))
    client = TestClient(create_app(timeout_s=10))
    page = get_page(client, "/models/ui-iris")
    assert "registry not set up on this machine: Airflow connection 'mlflow_nowhere' is not defined" in page.text()
    folder = version_dir(two_runs.second_spec, 1)
    stored = json.loads((folder / "metrics.json").read_text())
    versions = page.within("versions")
    shown = {c["attrs"]["data-metric"]: float(c["attrs"]["data-value"]) for c in versions.find()
             if "data-metric" in c["attrs"] and _in_row(versions, 1, c)}
    assert shown == {k: stored[k] for k in ("accuracy", "precision", "recall", "f1")}
    card = get_page(client, "/models/ui-iris/versions/1")
    assert "registry not set up on this machine" in card.text() and card.find(id="plots")
    assert get_page(client, "/").find(data_model="ui-iris")
