"""Request logs behind a real model server: `POST /v2/repository/models/{m}/logging`, real inference requests
over HTTP, Parquet parts read back with mlspec.request_logs (the reader `mlspec drift` uses), the sample, the
hourly cap, the roots, S3 through moto, and the counters on /metrics."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from tests.fixtures.moto_s3 import aws_connection_json
from tests.fixtures.server_testkit import auth_headers, classifier_onnx, classifier_signature, load

from mlspec.request_logs import log_folder_uri, read_since, request_log_settings
from mlspec.server.request_log import LogSettings
from mlspec.storage import open_store
from mlspec.vocabulary import METRIC_REQUEST_LOG_DROPPED, METRIC_REQUEST_LOG_ROWS

FEATURES = [f"pixel_{i // 8}_{i % 8}" for i in range(64)]
SCHEMA = {"name": "input", "datatype": "FP32", "shape": [-1, 64], "features": [{"name": f} for f in FEATURES]}


@pytest.fixture(autouse=True)
def _quick_flush(monkeypatch):
    monkeypatch.setenv("MLSPEC_REQUEST_LOG_FLUSH_S", "0.2")


def publish(store_uri: str, name: str) -> str:
    """Version 1 of a 64-feature classifier with its input_schema.json (named features); its folder URI."""
    store = open_store(store_uri)
    files = {
        "model.onnx": classifier_onnx(1),
        "signature.json": json.dumps(classifier_signature()).encode(),
        "input_schema.json": json.dumps(SCHEMA).encode(),
    }
    return store.publish_version(name, files, run_id="run-1").uri


def serving(server, store_uri: str, name: str, models: Path | None = None, **settings) -> None:
    """Load version 1 of `name` (published below `models`, else in the store at `store_uri`) and log its
    requests to the store at `store_uri` with `settings` (sample, max_mb_per_hour)."""
    with server.client() as client:
        published = publish(models.as_uri() if models else store_uri, name)
        assert load(client, name, published, "1").status_code == 200
        answer = client.post(
            f"/v2/repository/models/{name}/logging",
            json={"parameters": {"uri": log_folder_uri(store_uri, name), **settings}},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["logging"]["uri"] == log_folder_uri(store_uri, name)


def infer(client, name: str, request_id: str, x: np.ndarray) -> None:
    body = {
        "id": request_id,
        "inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
    }
    answer = client.post(f"/v2/models/{name}/infer", json=body)
    assert answer.status_code == 200, answer.text


def rows_when(store, name: str, count: int, timeout_s: float = 20.0):
    """The logged rows of version 1 once at least `count` are there (the writer flushes every 0.2 s here)."""
    deadline = time.monotonic() + timeout_s
    while True:
        logged = read_since(store, name, 1, datetime.now(UTC) - timedelta(hours=1))
        if len(logged.frame) >= count or time.monotonic() > deadline:
            return logged
        time.sleep(0.1)


def metric(server, line_start: str) -> float:
    with server.client(token=None) as client:
        text = client.get("/metrics").text
    found = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(found[0].rsplit(" ", 1)[1]) if found else 0.0


def test_answered_requests_come_back_as_parquet_rows_named_as_the_profile(start_server, tmp_path):
    server = start_server()
    store_uri = (tmp_path / "models").as_uri()
    serving(server, store_uri, "logged", sample=1.0, max_mb_per_hour=10)
    x = np.random.default_rng(0).normal(size=(15, 64)).astype(np.float32)
    with server.client() as client:
        for i in range(5):
            infer(client, "logged", f"req-{i}", x[3 * i : 3 * i + 3])
        pinned = {
            "id": "pinned",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}],
        }
        assert (
            client.post("/v2/models/logged/versions/1/infer", json=pinned).status_code == 200
        )  # not live traffic
    logged = rows_when(open_store(store_uri), "logged", 15)
    frame = logged.frame
    assert len(frame) == 15 and len(logged.parts) >= 1
    assert all("/logged/requests/v1/" in part and part.endswith(".parquet") for part in logged.parts)
    assert list(frame.columns[:4]) == ["ts", "request_id", "version", "row"] and FEATURES == list(
        frame.columns[4:]
    )
    assert sorted(set(frame["request_id"])) == [f"req-{i}" for i in range(5)] and set(frame["version"]) == {
        "1"
    }
    np.testing.assert_allclose(frame[FEATURES].to_numpy(), x, rtol=1e-6)  # in arrival order, row by row
    assert list(frame["row"]) == [0, 1, 2] * 5
    assert metric(server, f'{METRIC_REQUEST_LOG_ROWS}{{model="logged",version="1"}}') == 15


def test_the_sample_is_a_stable_share_of_request_ids(start_server, tmp_path):
    server = start_server()
    store_uri = (tmp_path / "models").as_uri()
    serving(server, store_uri, "sampled", sample=0.3, max_mb_per_hour=10)
    ids = [f"sample-{i}" for i in range(300)]
    chosen = [i for i in ids if LogSettings("", 0.3, 10).logs(i)]
    assert 60 <= len(chosen) <= 120  # a hash share of 0.3 of 300 ids, not all or none
    x = np.zeros((1, 64), dtype=np.float32)
    with server.client() as client:
        for request_id in ids:
            infer(client, "sampled", request_id, x)
    logged = rows_when(open_store(store_uri), "sampled", len(chosen))
    assert sorted(logged.frame["request_id"]) == sorted(chosen)


def test_the_hourly_cap_cuts_a_part_and_drops_the_rest_of_the_hour(start_server, tmp_path):
    server = start_server()
    store_uri = (tmp_path / "models").as_uri()
    cap_mb = 0.1  # 105 kB: about half of 320 rows of 64 random floats
    serving(server, store_uri, "capped", sample=1.0, max_mb_per_hour=cap_mb)
    x = (
        np.random.default_rng(1).normal(size=(40, 8, 64)).astype(np.float32)
    )  # random: Parquet cannot shrink it
    dropped = f'{METRIC_REQUEST_LOG_DROPPED}{{model="capped",reason="cap",version="1"}}'
    with server.client() as client:
        for i in range(40):
            infer(client, "capped", f"cap-{i}", x[i])
        deadline = time.monotonic() + 20
        while (
            metric(server, f'{METRIC_REQUEST_LOG_ROWS}{{model="capped",version="1"}}')
            + metric(server, dropped)
            < 320
        ):
            assert time.monotonic() < deadline, "the writer did not account for every row"
            time.sleep(0.1)
        written = metric(server, f'{METRIC_REQUEST_LOG_ROWS}{{model="capped",version="1"}}')
        assert 0 < written < 320 and metric(server, dropped) == 320 - written
        infer(client, "capped", "after-the-cap", x[0])  # the hour is capped: dropped on arrival
        assert metric(server, dropped) == 328 - written
    folder = tmp_path / "models" / "capped" / "requests" / "v1"
    sizes = [part.stat().st_size for part in folder.rglob("*.parquet")]
    assert sum(sizes) <= cap_mb * 1024 * 1024
    assert (
        len(read_since(open_store(store_uri), "capped", 1, datetime.now(UTC) - timedelta(hours=1)).frame)
        == written
    )


def test_logging_settings_are_checked_stopped_and_kept_across_restarts(start_server, tmp_path):
    state = tmp_path / "state"
    server = start_server(state)
    store_uri = (tmp_path / "models").as_uri()
    serving(server, store_uri, "settings", sample=0.5, max_mb_per_hour=1)
    path = "/v2/repository/models/settings/logging"
    with server.client() as client:
        outside = client.post(path, json={"parameters": {"uri": "file:///etc/mlspec-logs", "sample": 1}})
        assert outside.status_code == 403 and "outside the roots" in outside.text
        for parameters, words in (
            (
                {"uri": log_folder_uri(store_uri, "settings"), "sample": 0},
                "parameters.sample must be in (0, 1]",
            ),
            (
                {"uri": log_folder_uri(store_uri, "settings"), "max_mb_per_hour": -1},
                "max_mb_per_hour must be a positive",
            ),
            ({"uri": log_folder_uri(store_uri, "settings"), "every": 2}, "unknown logging parameter 'every'"),
        ):
            refused = client.post(path, json={"parameters": parameters})
            assert refused.status_code == 400 and words in refused.text
        assert (
            client.post(
                path, json={"parameters": {"uri": "x"}}, headers=auth_headers("wrong-token-" * 4)
            ).status_code
            == 401
        )
    server.stop()
    again = start_server(state)  # the settings in force come back with the state folder
    assert again.app.request_logs.settings("settings") == LogSettings(
        log_folder_uri(store_uri, "settings"), 0.5, 1.0
    )
    with again.client() as client:
        stopped = client.post(path, json={"parameters": None})
        assert stopped.status_code == 200 and stopped.json()["logging"] is None
    assert json.loads((state / "request_logs.json").read_text()) == {}


def test_a_symlink_planted_below_the_log_folder_cannot_lead_outside_the_roots(start_server, tmp_path):
    server = start_server()
    store_uri = (tmp_path / "models").as_uri()
    serving(server, store_uri, "planted", sample=1.0, max_mb_per_hour=10)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    folder = tmp_path / "models" / "planted" / "requests"
    folder.mkdir(parents=True)
    (folder / "v1").symlink_to(outside, target_is_directory=True)
    with server.client() as client:
        infer(client, "planted", "planted-1", np.zeros((2, 64), dtype=np.float32))
    reason = f'{METRIC_REQUEST_LOG_DROPPED}{{model="planted",reason="write_error",version="1"}}'
    deadline = time.monotonic() + 20
    while metric(server, reason) < 2:
        assert time.monotonic() < deadline, "the part was not refused"
        time.sleep(0.1)
    assert not list(outside.rglob("*.parquet"))
    assert not list(outside.iterdir())  # not even the hour's folders are made there


def test_parts_go_to_s3_with_the_servers_credentials(start_server, tmp_path, s3_server, monkeypatch):
    import boto3

    boto3.client("s3").create_bucket(Bucket="logs")
    from mlspec.server.app import ServerConfig

    server = start_server(config=ServerConfig(allow_roots=(tmp_path.as_uri(), "s3://logs")))
    monkeypatch.setenv("AIRFLOW_CONN_MLSPEC_TEST_S3", aws_connection_json(s3_server))
    store = open_store("s3://logs/models", "mlspec_test_s3")
    serving(server, store.root_uri, "on-s3", tmp_path / "models", sample=1.0, max_mb_per_hour=10)
    with server.client() as client:
        infer(client, "on-s3", "s3-1", np.ones((4, 64), dtype=np.float32))
    logged = rows_when(store, "on-s3", 4)
    assert len(logged.frame) == 4 and logged.parts[0].startswith("s3://logs/models/on-s3/requests/v1/")
    assert (logged.frame[FEATURES].to_numpy() == 1).all()


def test_the_deploy_side_settings_come_from_the_spec():
    from tests.operators.operations_testkit import spec_for

    spec = spec_for("logs-spec", "serving:\n  log_requests: {sample: 0.25, max_mb_per_hour: 5}\n")
    assert request_log_settings(spec, "file:///store/models/") == {
        "uri": "file:///store/models/logs-spec/requests",
        "sample": 0.25,
        "max_mb_per_hour": 5.0,
    }
    assert request_log_settings(spec_for("logs-off"), "file:///store/models") is None


def test_models_that_do_not_log_skip_the_writer(start_server, tmp_path):
    server = start_server()
    with server.client() as client:
        assert load(client, "quiet", publish((tmp_path / "models").as_uri(), "quiet"), "1").status_code == 200
        infer(client, "quiet", "quiet-1", np.zeros((1, 64), dtype=np.float32))
    assert not server.app.request_logs.wants("quiet")
    assert not (Path(tmp_path) / "models" / "quiet" / "requests").exists()


def test_a_table_model_logs_its_columns_by_name_as_its_profile_names_them(start_server, tmp_path):
    from tests.fixtures.table_model import COLUMNS, published_schemas, table_dataset, trained

    from mlspec.drift_report import current_table
    from mlspec.ml.drift import COLUMN_ADDED, COLUMN_MISSING, TYPE_CHANGED, compare
    from mlspec.ml.onnx_export import onnx_signature
    from mlspec.ml.profile import build_profile

    _, _, onnx_bytes = trained()
    inputs, outputs = published_schemas()
    files = {
        "model.onnx": onnx_bytes,
        "signature.json": json.dumps(onnx_signature(onnx_bytes)).encode(),
        "input_schema.json": json.dumps(inputs).encode(),
        "output_schema.json": json.dumps(outputs).encode(),
    }
    store_uri = (tmp_path / "models").as_uri()
    uri = open_store(store_uri).publish_version("table", files, run_id="run-1").uri
    server = start_server()
    rows = inputs["example"]
    datatypes = {column["name"]: column["datatype"] for column in inputs["columns"]}
    body = {
        "id": "table-1",
        "inputs": [
            {"name": name, "datatype": datatype, "shape": [len(rows), 1], "data": [row[name] for row in rows]}
            for name, datatype in datatypes.items()
        ],
    }
    with server.client() as client:
        assert load(client, "table", uri, "1").status_code == 200
        logging = {"uri": log_folder_uri(store_uri, "table"), "sample": 1.0, "max_mb_per_hour": 1}
        assert (
            client.post("/v2/repository/models/table/logging", json={"parameters": logging}).status_code
            == 200
        )
        answer = client.post("/v2/models/table/infer", json=body)
        assert answer.status_code == 200, answer.text
    frame = rows_when(open_store(store_uri), "table", len(rows)).frame
    profile = build_profile(table_dataset().x_train, COLUMNS)
    logged_features = [c for c in frame.columns if c not in ("ts", "request_id", "version", "row", "label")]
    assert logged_features == [entry["name"] for entry in profile["columns"]]
    assert list(frame["island"]) == [row["island"] for row in rows]
    labels = next(o for o in answer.json()["outputs"] if o["name"] == "label")["data"]
    assert list(frame["label"]) == labels and set(labels) <= {"Adelie", "Chinstrap", "Gentoo"}
    report = compare(
        profile, *current_table(frame, profile)
    )  # what `mlspec drift` compares: every column, same type
    assert report.columns_compared == len(COLUMNS)
    assert not [row for row in report.rows if row.check in (COLUMN_ADDED, COLUMN_MISSING, TYPE_CHANGED)]


def test_requests_over_the_writers_queue_are_dropped_and_counted(start_server, tmp_path, monkeypatch):
    from mlspec.server import request_log

    monkeypatch.setattr(request_log, "QUEUE_BYTES", 1024)  # one 8-row request of 64 FP32 features is 2 kB
    server = start_server()
    store_uri = (tmp_path / "models").as_uri()
    serving(server, store_uri, "crowded", sample=1.0, max_mb_per_hour=10)
    with server.client() as client:
        infer(client, "crowded", "big", np.zeros((8, 64), dtype=np.float32))
        infer(client, "crowded", "small", np.zeros((1, 64), dtype=np.float32))
    assert (
        metric(server, f'{METRIC_REQUEST_LOG_DROPPED}{{model="crowded",reason="queue_full",version="1"}}')
        == 8
    )
    assert list(rows_when(open_store(store_uri), "crowded", 1).frame["request_id"]) == ["small"]


def test_mlspec_serve_writes_what_it_buffered_when_it_stops(tmp_path):
    """A real `mlspec serve` process whose writer would wait 10 minutes: SIGTERM writes the rows it holds."""
    import httpx
    from tests.fixtures.mlspec_serve import model_server_process

    store_uri = (tmp_path / "models").as_uri()
    uri = publish(store_uri, "stopping")
    (tmp_path / "state").mkdir()
    with model_server_process(tmp_path / "state", {"MLSPEC_REQUEST_LOG_FLUSH_S": "600"}) as url:
        headers = auth_headers(os.environ["MLSPEC_SERVER_TOKEN"])
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            assert load(client, "stopping", uri, "1").status_code == 200
            logging = {"uri": log_folder_uri(store_uri, "stopping"), "sample": 1.0, "max_mb_per_hour": 1}
            assert client.post(
                "/v2/repository/models/stopping/logging", json={"parameters": logging}
            ).is_success
            for i in range(3):
                infer(client, "stopping", f"stop-{i}", np.ones((2, 64), dtype=np.float32))
        assert not list((tmp_path / "models" / "stopping").glob("requests/**/*.parquet"))  # still buffered
    logged = read_since(open_store(store_uri), "stopping", 1, datetime.now(UTC) - timedelta(hours=1))
    assert len(logged.frame) == 6 and sorted(set(logged.frame["request_id"])) == [
        "stop-0",
        "stop-1",
        "stop-2",
    ]
