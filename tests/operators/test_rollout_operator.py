"""The rollout's Airflow side: the rollback notification's words, and (with a real `mlspec serve`) the
rollout operator's steps and its trigger."""

from __future__ import annotations

import asyncio
import importlib
import json

import numpy as np
import pytest
from tests.e2e.test_e2e_notify import Inbox
from tests.fixtures.load_generator import LoadGenerator, tensor_bodies
from tests.fixtures.ports import free_port
from tests.fixtures.server_testkit import classifier_onnx, classifier_signature
from tests.operators.operations_testkit import Published, spec_for, unique

from mlspec.notify import EVENTS, ROLLBACK, rollback_message
from mlspec.vocabulary import METRIC_START_TIME


def test_the_rollback_message_names_the_model_the_candidate_the_gate_and_what_serves():
    subject, paragraphs = rollback_message(
        {"model": "iris", "version": 3, "production": 2, "reason": "the shadow 100% step failed its gates: "
         "agreement 0.61 >= 0.95: FAILED (on 400 rows compared)", "gate": "agreement", "by": "the rollout's gates",
         "run_id": "manual__1"}, "specs/iris.yaml")
    assert subject == "[mlspec] iris: version 3 rolled back (agreement); production version 2 answers every request"
    text = "\n".join(paragraphs)
    assert "agreement 0.61 >= 0.95: FAILED" in text and "run manual__1" in text
    assert "`mlspec rollout specs/iris.yaml --status`" in text and "rolled_back" in text
    assert ROLLBACK in EVENTS  # the event the rollback sends is one a spec can ask for


def test_a_first_version_rolled_back_says_nothing_is_served():
    subject, _ = rollback_message({"model": "iris", "version": 1, "production": None, "reason": "rejected",
                                   "gate": "rejected", "by": "alice"}, "")
    assert subject.endswith("version 1 rolled back (rejected); nothing is served")


# -- the rollout task against real parts: a model server (uvicorn in this process), the embedded MLflow
# registry, the file store, real traffic from a load generator, and the step trigger run as the triggerer
# runs it (rebuilt from its serialized form, its event through serde). -------------------------------------
SHADOW_AND_CANARY = ("rollout:\n  shadow: {percent: 100, for: 1s}\n  canary: {steps: [50, 100], bake: 1s}\n"
                     "  gates: {agreement: 0.95, error_rate: 0.01, min_requests: 20}\n")
BODIES = tensor_bodies(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32), "input")


def publish(name: str, seeds: list[int], extra: str, *, deploy: bool = True) -> Published:
    """One registered version per seed (the same seed: the same answers); version 1 production and serving
    (unless not `deploy`)."""
    from mlspec.operations import deploy_version
    from mlspec.registry.base import RegistrationRequest
    from mlspec.storage import open_store

    spec = spec_for(name, extra)
    store = open_store(spec.storage.uri, spec.storage.connection)
    published = Published(spec, {})
    for run, seed in enumerate(seeds, start=1):
        version = store.publish_version(
            name, {"model.onnx": classifier_onnx(seed), "signature.json": json.dumps(classifier_signature()).encode()},
            run_id=f"run-{run}")
        published.uris[version.version] = version.uri
        published.registry().register(RegistrationRequest(
            model_name=name, version=version.version, source_uri=version.uri, model_uri=f"{version.uri}/model.onnx",
            metrics={"accuracy": 0.9}, data_source="builtin:iris", spec_hash="ab12", dag_id=name,
            run_id=f"run-{run}", onnx_opset=17, files=dict(version.files)))
    if deploy:
        deploy_version(spec, 1)
    return published


def deployed_candidate(model: Published) -> dict:
    """Deploy's result for version 2 of a rollout spec: loaded beside production, answering nothing."""
    from mlspec.release import Release

    release = Release.open(model.spec)
    return release.await_ready(release.apply(2, model.uris[2], serve=False)).to_xcom()


def rollout_task(model: Published, deployment: dict):
    from mlspec.operators.rollout import RolloutOperator

    return RolloutOperator(task_id="rollout", spec=model.spec.to_dict(), spec_file=f"{model.name}.yaml",
                           deployment=deployment, smoke_test={"agreement": 1.0})


def run_task(task, context: dict, *, between_steps=None) -> tuple[object, list[dict]]:
    """The worker, the triggerer and the scheduler in turn until the task ends: its result (or the exception
    it ended with) and every event its triggers fired."""
    from airflow.sdk.exceptions import TaskDeferred
    from airflow.sdk.serde import deserialize, serialize

    events, call = [], lambda: task.execute(context)
    while True:
        try:
            return call(), events
        except TaskDeferred as deferred:
            classpath, kwargs = deferred.trigger.serialize()
            module, _, cls = classpath.rpartition(".")
            trigger = getattr(importlib.import_module(module), cls)(**deserialize(serialize(kwargs)))
            if between_steps is not None:
                between_steps(len(events), trigger)
            event = asyncio.run(first_event(trigger))
            events.append(event)
            next_kwargs = deserialize(serialize({**(deferred.kwargs or {}), "event": event}))
            call = lambda d=deferred, k=next_kwargs: task.resume_execution(d.method_name, k, context)  # noqa: E731
        except Exception as exc:  # noqa: BLE001 - the task's end, for the test to read
            return exc, events


async def first_event(trigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def record_of(model: Published) -> dict:
    return model.registry().version_record(model.name, 2).rollout


def traffic_of(model: Published) -> dict:
    from mlspec.release import Release

    return Release.open(model.spec).serving.traffic(model.name)


def test_an_agreeing_candidate_goes_through_shadow_and_canary_and_answers_every_request(ops_server, request, caplog):
    from mlspec.release import Release

    model = publish(unique(request), [1, 1], SHADOW_AND_CANARY)
    task = rollout_task(model, deployed_candidate(model))
    caplog.set_level("INFO", logger="mlspec.operators.rollout")
    caplog.set_level("INFO", logger="mlspec.triggers.rollout")
    with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2) as load:
        result, events = run_task(task, {"run_id": "manual__agree"})
        summary = load.stop()
    assert isinstance(result, dict), result
    assert [e["status"] for e in events] == ["pass", "pass", "pass"]
    assert [(s["kind"], s["percent"]) for s in result["steps"]] == [("shadow", 100), ("canary", 50), ("canary", 100)]
    # One log line per gate check, with its value and limit.
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("shadow 100%: agreement 1 >= 0.95: passed") for line in lines), lines
    # While a step bakes, its progress: what the candidate did so far and how long the step still waits.
    assert any(line.startswith("shadow 100%: ") and "requests so far (min_requests 20)" in line
               and line.endswith("s of 1s bake") for line in lines), lines
    assert any("canary step 2/3, 50%, 1s bake;" in line for line in lines), lines
    assert any(line.startswith("canary 50%: min_requests") for line in lines)
    # The candidate answers every request now (the plain load: no split, no shadow); promote moves production.
    assert Release.open(model.spec).serving.served_version(model.name) == 2
    assert traffic_of(model)["shadow"] is None
    assert model.registry().production_version(model.name) == 1
    record = record_of(model)
    assert record["state"] == "completed" and record["production"] == 1
    assert [(s["kind"], s["percent"], s["outcome"]) for s in record["steps"]] == [
        ("shadow", 100, "passed"), ("canary", 50, "passed"), ("canary", 100, "passed")]
    assert record["steps"][0]["traffic"] == {"1": 100, "2": 0} and record["steps"][1]["traffic"] == {"1": 50, "2": 50}
    assert all(c["passed"] for s in record["steps"] for c in s["checks"])
    # Live traffic reached both versions during the canary, and nothing failed.
    assert set(summary.by_version) == {"1", "2"} and summary.by_status == {200: summary.ok}


@pytest.fixture
def smtp_inbox(monkeypatch):
    """An SMTP server on 127.0.0.1 (a thread of this process) and the Airflow connection smtp_test."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    extra = {"from_email": "mlspec@example.com", "disable_tls": True, "disable_ssl": True, "retry_limit": 0}
    connection = {"conn_type": "smtp", "host": "127.0.0.1", "port": controller.port, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", json.dumps(connection))
    try:
        yield inbox
    finally:
        controller.stop()


def test_a_disagreeing_candidate_fails_the_shadow_gate_and_production_answers_every_request(
    ops_server, request, smtp_inbox
):
    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.release import Release

    notify = "notify: {connection: smtp_test, to: [ml-team@example.com], events: [rollback]}\n"
    model = publish(unique(request), [1, 2], SHADOW_AND_CANARY + notify)
    task = rollout_task(model, deployed_candidate(model))
    with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2) as load:
        result, events = run_task(task, {"run_id": "manual__weak"})
        summary = load.stop()
    assert isinstance(result, AirflowFailException), result
    assert [e["status"] for e in events] == ["fail"]
    message = str(result)
    assert "agreement" in message and "FAILED" in message and "version 1 is serving again" in message
    assert "Next step: `mlspec rollout" in message
    # Production answered every live request; the candidate is unloaded and rolled back, on the audit trail.
    assert summary.by_version == {"1": summary.ok} and summary.by_status == {200: summary.ok}
    assert Release.open(model.spec).serving.served_version(model.name) == 1
    assert traffic_of(model)["weights"] == {"1": 100}
    found = model.registry().version_record(model.name, 2)
    assert found.state == "rolled_back"
    record = found.rollout
    assert record["state"] == "rolled_back"
    assert [(s["kind"], s["outcome"]) for s in record["steps"]] == [("shadow", "failed"), ("rollback", "failed")]
    agreement = next(c for c in record["steps"][0]["checks"] if c["gate"] == "agreement")
    assert agreement["value"] < 0.95 and agreement["passed"] is False
    trail = model.registry().production_changes(model.name)
    assert trail[-1].action == "auto_rollback" and trail[-1].to_version == 1 and "agreement" in trail[-1].reason
    # The rollback notification: the model, the candidate, the failed gate, what serves.
    ((subject, body),) = smtp_inbox.texts()
    assert subject == f"[mlspec] {model.name}: version 2 rolled back (agreement); production version 1 answers every request"
    assert "agreement" in body and "FAILED" in body and "run manual__weak" in body


def test_a_held_step_waits_for_a_person_and_an_abort_rolls_back(ops_server, request):
    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.rollout.record import send_command

    model = publish(unique(request), [1, 2], "rollout:\n  canary: {steps: [50, 100], bake: 1s}\n"
                    "  gates: {agreement: 0.95, error_rate: 0.01, min_requests: 20}\n  on_fail: hold\n")
    assert model.spec.rollout.on_fail == "hold"
    task = rollout_task(model, deployed_candidate(model))

    def abort_when_held(fired: int, trigger) -> None:
        if fired == 1:  # the canary step failed and the rollout is held: production answers every request, the
            # candidate gets copies only while a person decides; a person aborts
            traffic = traffic_of(model)
            assert record_of(model)["state"] == "held" and traffic["weights"] == {"1": 100}, traffic
            assert traffic["shadow"]["version"] == "2" and traffic["shadow"]["percent"] == 100
            send_command(model.registry(), model.name, 2, "abort", "cli:alice")

    with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2):
        result, events = run_task(task, {"run_id": "manual__hold"}, between_steps=abort_when_held)
    assert isinstance(result, AirflowFailException), result
    assert [e["status"] for e in events] == ["fail", "aborted"]
    record = record_of(model)
    assert record["state"] == "aborted"
    assert [s["kind"] for s in record["steps"]] == ["canary", "command", "rollback"]
    assert record["steps"][1]["by"] == "cli:alice"
    assert traffic_of(model)["weights"] == {"1": 100}


def test_an_approval_that_times_out_rolls_back(ops_server, request):
    """Airflow's awaiting-input sweep answers a request nobody answered with its defaults (Reject) and
    `timedout`: the rollout rolls back, and the record says the approval timed out."""
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.operators.rollout import ApproveRolloutOperator
    from mlspec.rollout.record import RolloutRecord, save_record

    rollout = "rollout:\n  canary: {steps: [50, 100], bake: 1s}\n  approval: {required: true, timeout: 2s}\n"
    model = publish(unique(request), [1, 1], rollout)
    deployment = deployed_candidate(model)
    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    task = ApproveRolloutOperator(task_id="approve_rollout", spec=model.spec.to_dict(), spec_file=f"{model.name}.yaml",
                                  deployment=deployment, rollout={"steps": []})
    assert task.defaults == ["Reject"] and task.response_timeout.total_seconds() == 2
    subject, body = task_request(task, model)
    assert subject == f"{model.name}: give version 2 every request? (production: version 1)"
    assert "**Reject** (or no answer within 2s)" in body
    event = {"chosen_options": ["Reject"], "params_input": {}, "responded_at": datetime.now(UTC),
             "responded_by_user": None, "timedout": True}
    with pytest.raises(AirflowFailException, match="no one approved the last step within 2s"):
        task.execute_complete({"run_id": "manual__timeout"}, event)
    record = record_of(model)
    assert record["state"] == "rolled_back"
    assert [(s["kind"], s["outcome"]) for s in record["steps"]] == [("approval", "timed_out"), ("rollback", "failed")]
    assert traffic_of(model)["weights"] == {"1": 100}
    assert model.registry().version_record(model.name, 2).state == "rolled_back"


def task_request(task, model: Published) -> tuple[str, str]:
    from mlspec.operators.rollout import approval_request
    from mlspec.serving import Deployment

    return approval_request(task.model_spec, Deployment.from_xcom(task.deployment), {"steps": []})


def test_a_spec_without_rollout_compiles_to_todays_stages_and_one_with_it_adds_the_rollout_before_promote():
    from tests.fixtures.paths import SPECS

    from mlspec.compiler import STAGES, TASK_ORDER, build_dag, stages_for
    from mlspec.spec import load_spec_text

    text = (SPECS / "iris.yaml").read_text()
    plain = load_spec_text(text, "iris.yaml")
    assert stages_for(plain) is STAGES
    assert [t.task_id for t in build_dag(plain).topological_sort()] == list(TASK_ORDER)

    canary = load_spec_text(text + "rollout:\n  canary: {steps: [10, 100], bake: 1s}\n", "iris.yaml")
    assert [t.task_id for t in build_dag(canary).topological_sort()] == [*TASK_ORDER[:-1], "rollout", "promote"]
    approved = load_spec_text(text + "rollout:\n  approval: {required: true, timeout: 48h}\n", "iris.yaml")
    dag = build_dag(approved)
    assert [t.task_id for t in dag.topological_sort()][-4:] == ["rollout", "approve_rollout", "complete_rollout", "promote"]
    approve = dag.get_task("approve_rollout")
    assert approve.options == ["Approve", "Reject"] and approve.response_timeout.total_seconds() == 48 * 3600
    assert "Flow: " in dag.doc_md and "approve_rollout → complete_rollout → promote" in dag.doc_md
    # What Airflow's DAG processor stores: the rollout's tasks serialize like every other.
    from airflow.serialization.serialized_objects import DagSerialization

    tasks = {t["__var"]["task_id"]: t["__var"] for t in DagSerialization.to_dict(dag)["dag"]["tasks"]}
    assert tasks["approve_rollout"]["task_type"] == "ApproveRolloutOperator"


@pytest.fixture
def quick_flush(monkeypatch):
    monkeypatch.setenv("MLSPEC_REQUEST_LOG_FLUSH_S", "0.2")


def test_a_spec_with_log_requests_has_the_server_log_its_requests_when_deployed(quick_flush, ops_server, request):
    import time
    from datetime import UTC, datetime, timedelta

    from mlspec.request_logs import read_since
    from mlspec.storage import open_store

    model = publish(unique(request), [1], "serving:\n  log_requests: {sample: 1.0, max_mb_per_hour: 10}\n")
    with LoadGenerator(ops_server.url, model.name, BODIES[:8], workers=1, max_requests=8) as load:
        load.wait_for(8)
    store = open_store(model.spec.storage.uri, model.spec.storage.connection)
    deadline = time.monotonic() + 20
    while len(rows := read_since(store, model.name, 1, datetime.now(UTC) - timedelta(hours=1)).frame) < 8:
        assert time.monotonic() < deadline, f"{len(rows)} of 8 requests logged"
        time.sleep(0.2)
    assert set(rows["version"].astype(str)) == {"1"}


def test_a_paused_step_waits_and_runs_again_once_resumed(ops_server, request):
    from mlspec.rollout.record import send_command

    model = publish(unique(request), [1, 1], "rollout:\n  canary: {steps: [100], bake: 1s}\n"
                                             "  gates: {agreement: 0.95, min_requests: 20}\n")
    task = rollout_task(model, deployed_candidate(model))

    def pause_then_resume(fired: int, trigger) -> None:
        if fired == 0:  # the step has begun: a person pauses it
            send_command(model.registry(), model.name, 2, "pause", "cli:alice")
        if fired == 1:  # paused, the traffic as it was: a person resumes
            assert record_of(model)["state"] == "paused" and traffic_of(model)["weights"] == {"2": 100}
            send_command(model.registry(), model.name, 2, "resume", "cli:bob")

    with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2):
        result, events = run_task(task, {"run_id": "manual__pause"}, between_steps=pause_then_resume)
    assert isinstance(result, dict), result
    assert [e["status"] for e in events] == ["paused", "resumed", "pass"]
    record = record_of(model)
    assert record["state"] == "completed"
    assert [(s["kind"], s["outcome"], s.get("by")) for s in record["steps"]] == [
        ("canary", "paused", None), ("command", "paused", "cli:alice"), ("command", "resumed", "cli:bob"),
        ("canary", "passed", None)]


def test_a_rollout_task_that_cannot_go_on_gives_production_every_request_back(ops_server, request):
    """Not a gate: the server refuses the step's traffic (its candidate was unloaded behind the task's back).
    The task fails, and production answers every request again."""
    from airflow.sdk.exceptions import AirflowException

    model = publish(unique(request), [1, 1], SHADOW_AND_CANARY)
    deployment = deployed_candidate(model)
    with ops_server.client() as client:
        assert client.post(f"/v2/repository/models/{model.name}/unload", json={"parameters": {"version": "2"}}
                           ).status_code == 200
    result, events = run_task(rollout_task(model, deployment), {"run_id": "manual__crash"})
    assert isinstance(result, AirflowException) and "refused the traffic" in str(result), result
    assert events == []
    record = record_of(model)
    assert record["state"] == "rolled_back" and record["steps"][-1]["kind"] == "rollback"
    assert "the rollout task failed" in record["steps"][-1]["message"]
    assert traffic_of(model)["weights"] == {"1": 100}


@pytest.mark.parametrize("approval", [False, True])
def test_a_first_version_has_nothing_to_roll_out_against_and_answers_every_request(ops_server, request, caplog,
                                                                                  approval):
    """Nothing is production: nothing to protect or compare with, and no client sends a new model traffic. The
    rollout takes no step (no trigger, no traffic to wait for), no one is asked to approve, and the version
    answers every request once the rollout (or, with an approval, complete_rollout) is done."""
    from mlspec.operators.rollout import ApproveRolloutOperator, CompleteRolloutOperator
    from mlspec.release import Release

    extra = SHADOW_AND_CANARY + ("  approval: {required: true, timeout: 1h}\n" if approval else "")
    model = publish(unique(request), [1], extra, deploy=False)
    release = Release.open(model.spec)
    deployment = release.await_ready(release.apply(1, model.uris[1], serve=False)).to_xcom()
    assert deployment["previous_version"] is None
    caplog.set_level("INFO", logger="mlspec.operators.rollout")
    result, events = run_task(rollout_task(model, deployment), {"run_id": "manual__first"})
    assert isinstance(result, dict) and result["steps"] == [] and events == [], result
    if approval:
        approve = ApproveRolloutOperator(task_id="approve_rollout", spec=model.spec.to_dict(), spec_file="",
                                         deployment=deployment, rollout=result)
        assert approve.execute({"run_id": "manual__first"}) == {"approved": True, "by": None}
        assert model.registry().version_record(model.name, 1).rollout["state"] == "running"
        complete = CompleteRolloutOperator(task_id="complete_rollout", spec=model.spec.to_dict(), spec_file="",
                                           deployment=deployment, approval={"approved": True, "by": None})
        result, events = run_task(complete, {"run_id": "manual__first"})
        assert isinstance(result, dict) and result["steps"] == [] and events == [], result
    assert release.serving.served_version(model.name) == 1
    record = model.registry().version_record(model.name, 1).rollout
    assert record["state"] == "completed" and record["production"] is None and record["steps"] == []
    note = ("no production version: nothing to roll out against; version 1 takes every request after its smoke "
            "test")
    lines = [r.getMessage() for r in caplog.records if r.name == "mlspec.operators.rollout"]
    assert note in lines and not any("None" in line for line in lines), lines


def test_a_step_whose_metrics_cannot_be_read_fails_after_three_bakes_and_says_why(ops_home, request):
    import time

    from mlspec.triggers.rollout import RolloutStepTrigger

    spec = spec_for(unique(request), SHADOW_AND_CANARY)
    trigger = RolloutStepTrigger(spec=spec.to_dict(), spec_file="", candidate=2, production=1,
                                 step={"kind": "canary", "percent": 50, "bake_s": 1},
                                 started_at=time.time() - 2.5, endpoint_url=f"http://127.0.0.1:{free_port()}",
                                 carry={"index": 0})
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "fail" and event["checks"] == [] and event["carry"] == {"index": 0}
    assert event["message"].startswith("the metrics could not be read: could not read http://127.0.0.1:")


def test_a_step_can_read_its_gates_from_a_prometheus_that_scrapes_the_server(ops_server, request, tmp_path,
                                                                            monkeypatch):
    """rollout.metrics source prometheus: the step's trigger finds Prometheus through the Airflow connection and
    reads the candidate's window from it (a real Prometheus scraping the real server every second)."""
    from urllib.parse import urlsplit

    from tests.fixtures.prometheus import start_prometheus, wait_for_scrape

    target = urlsplit(ops_server.url).netloc
    base_url, stop = start_prometheus(tmp_path / "prometheus", [target], scrape_interval="1s")
    try:
        prometheus = urlsplit(base_url)
        monkeypatch.setenv("AIRFLOW_CONN_PROM_TEST", json.dumps(
            {"conn_type": "http", "host": prometheus.hostname, "port": prometheus.port}))
        wait_for_scrape(base_url, target)
        model = publish(unique(request), [1, 1], "rollout:\n  canary: {steps: [100], bake: 2s}\n"
                        "  gates: {agreement: 0.95, min_requests: 20}\n"
                        "  metrics: {source: prometheus, connection: prom_test}\n")
        task = rollout_task(model, deployed_candidate(model))
        with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2):
            result, events = run_task(task, {"run_id": "manual__prometheus"})
    finally:
        stop()
    assert isinstance(result, dict), result
    assert [e["status"] for e in events] == ["pass"]
    checks = {c["gate"]: c for c in events[0]["checks"]}
    assert checks["min_requests"]["value"] >= 20 and checks["agreement"]["value"] == 1.0
    assert record_of(model)["state"] == "completed"


def rolled_back_by_hand(model: Published, deployment: dict) -> None:
    """A CLI abort while the task waits for a worker: production serves, the candidate is unloaded."""
    from mlspec.release import Release, Trigger
    from mlspec.rollout.record import RolloutRecord, save_record
    from mlspec.serving import Deployment

    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    release = Release.open(model.spec)
    release.set_traffic({"weights": {"1": 50, "2": 50}})
    release.roll_back_rollout(Deployment.from_xcom(deployment), "aborted by hand", Trigger.from_cli(),
                              by="cli:alice", gate="aborted")


def test_a_rollout_rolled_back_meanwhile_is_never_finished_nor_approved(ops_server, request):
    """The last step's pass (or an Approve) reaches the worker after a CLI abort rolled the rollout back: the
    task stops there, production keeps every request, and the record stays over."""
    from datetime import UTC, datetime

    from airflow.sdk.exceptions import AirflowFailException

    from mlspec.operators.base import GateFailed
    from mlspec.operators.rollout import ApproveRolloutOperator, CompleteRolloutOperator
    from mlspec.release import Release

    model = publish(unique(request), [1, 1], "rollout:\n  canary: {steps: [50, 100], bake: 1s}\n"
                                             "  approval: {required: true, timeout: 1h}\n")
    deployment = deployed_candidate(model)
    rolled_back_by_hand(model, deployment)
    task = rollout_task(model, deployment)
    with pytest.raises(GateFailed, match="was rolled_back by cli:alice"):
        task.finish({"run_id": "manual__late"}, [])
    with pytest.raises(GateFailed, match="was rolled_back"):
        task.run_step({"run_id": "manual__late"}, 0, [])
    complete = CompleteRolloutOperator(task_id="complete_rollout", spec=model.spec.to_dict(),
                                       spec_file=f"{model.name}.yaml", deployment=deployment)
    with pytest.raises(GateFailed, match="was rolled_back"):
        complete.finish({"run_id": "manual__late"}, [])  # the last step passed as the abort landed
    approve = ApproveRolloutOperator(task_id="approve_rollout", spec=model.spec.to_dict(),
                                     spec_file=f"{model.name}.yaml", deployment=deployment, rollout={"steps": []})
    event = {"chosen_options": ["Approve"], "params_input": {}, "responded_at": datetime.now(UTC),
             "responded_by_user": {"id": "bob", "name": "bob"}}
    with pytest.raises(AirflowFailException, match="was rolled_back"):
        approve.execute_complete({"run_id": "manual__late"}, event)
    assert Release.open(model.spec).serving.served_version(model.name) == 1
    assert traffic_of(model)["weights"] == {"1": 100}
    record = record_of(model)
    assert record["state"] == "rolled_back" and [s["kind"] for s in record["steps"]] == ["rollback"]


class RegistryDown:
    """A registry that answers nothing (MLflow's hiccup as a gate fails)."""

    def __getattr__(self, name: str):
        from mlspec.errors import RegistryError

        def refuse(*args, **kwargs):
            raise RegistryError(f"the registry did not answer {name}")

        return refuse


def test_a_rollback_gives_production_every_request_back_when_the_registry_does_not_answer(ops_server, request,
                                                                                          caplog):
    from airflow.sdk.exceptions import AirflowException

    from mlspec.errors import RegistryError
    from mlspec.release import Release
    from mlspec.rollout.record import RolloutRecord, save_record

    model = publish(unique(request), [1, 2], SHADOW_AND_CANARY)
    deployment = deployed_candidate(model)
    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    real = Release.open(model.spec)
    real.set_traffic({"weights": {"1": 50, "2": 50}})
    task = rollout_task(model, deployment)
    task.__dict__["release"] = Release(real.spec, RegistryDown(), real.serving, real.store)

    def gate_fails_and_registry_blinks():
        raise RegistryError("the registry did not answer record_rollout")

    with pytest.raises(AirflowException, match="the registry did not answer record_rollout"):
        task.guarded({"run_id": "manual__down"}, gate_fails_and_registry_blinks)
    assert traffic_of(model)["weights"] == {"1": 100} and traffic_of(model)["shadow"] is None
    assert real.serving.served_version(model.name) == 1
    assert any("the split is cleared, so production answers every request" in r.getMessage() and "Next step: "
               in r.getMessage() for r in caplog.records)


def test_a_rollback_leaves_a_candidate_an_operation_made_production_meanwhile_serving(ops_server, request):
    from mlspec.release import Release, Trigger
    from mlspec.rollout.record import RolloutRecord, save_record
    from mlspec.serving import Deployment

    model = publish(unique(request), [1, 1], SHADOW_AND_CANARY)
    deployment = deployed_candidate(model)
    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    release = Release.open(model.spec)
    release.serving.deploy(model.name, 2, model.uris[2])  # `mlspec deploy --version 2` meanwhile
    model.registry().set_production(model.name, 2, reason="by hand")
    story = release.roll_back_rollout(Deployment.from_xcom(deployment), "a gate failed", Trigger.from_cli(),
                                      by="the rollout's gates", gate="agreement")
    assert "an operation has made version 2 production since: serving left as is" in story
    assert release.serving.served_version(model.name) == 2
    assert model.registry().version_record(model.name, 2).state != "rolled_back"


def test_a_crashed_trigger_rolls_the_rollout_back(ops_server, request):
    """Airflow resumes a task whose trigger crashed with `__fail__`: the rollout rolls back all the same."""
    from airflow.sdk.exceptions import AirflowException

    from mlspec.rollout.record import RolloutRecord, save_record

    model = publish(unique(request), [1, 1], SHADOW_AND_CANARY)
    deployment = deployed_candidate(model)
    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    from mlspec.release import Release

    Release.open(model.spec).set_traffic({"weights": {"1": 50, "2": 50}})
    with pytest.raises(AirflowException):
        rollout_task(model, deployment).resume_execution("__fail__", {"error": "Trigger failure"},
                                                         {"run_id": "manual__crash"})
    assert traffic_of(model)["weights"] == {"1": 100}
    record = record_of(model)
    assert record["state"] == "rolled_back" and "Trigger failure" in record["steps"][-1]["message"]


def test_a_trigger_that_cannot_start_fails_with_the_reason(ops_home, request):
    """A Prometheus connection the triggerer does not know: a `fail` event naming it, not a crash."""
    import time

    from mlspec.triggers.rollout import RolloutCommandTrigger, RolloutStepTrigger

    spec = spec_for(unique(request), SHADOW_AND_CANARY + "  metrics: {source: prometheus, connection: no_such_conn}\n")
    trigger = RolloutStepTrigger(spec=spec.to_dict(), spec_file="", candidate=2, production=1,
                                 step={"kind": "canary", "percent": 50, "bake_s": 1}, started_at=time.time(),
                                 endpoint_url="http://127.0.0.1:1", carry={"index": 0})
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "fail" and event["carry"] == {"index": 0}
    assert event["message"].startswith("the step's watch failed") and "no_such_conn" in event["message"]
    broken = dict(spec.to_dict(), registry={"backend": "no-such-registry"})
    waiting = RolloutCommandTrigger(spec=broken, spec_file="", candidate=2, since=time.time(), timeout_s=5,
                                    carry={"index": 0})
    event = asyncio.run(first_event(waiting))
    assert event["status"] == "fail" and event["message"].startswith("the wait for a command failed")


def test_while_the_approval_waits_production_answers_every_request_and_the_candidate_gets_copies(ops_server,
                                                                                                 request):
    model = publish(unique(request), [1, 1], "rollout:\n  canary: {steps: [50, 100], bake: 1s}\n"
                    "  gates: {agreement: 0.95, min_requests: 20}\n  approval: {required: true, timeout: 1h}\n")
    task = rollout_task(model, deployed_candidate(model))
    with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2):
        result, events = run_task(task, {"run_id": "manual__approval"})
    assert isinstance(result, dict) and [e["status"] for e in events] == ["pass"], result
    traffic = traffic_of(model)
    assert traffic["weights"] == {"1": 100} and traffic["shadow"]["version"] == "2", traffic
    assert record_of(model)["state"] == "awaiting_approval"
    _, body = task_request(rollout_task(model, task.deployment), model)
    assert "production version **1** answers every request and version 2 gets a copy of each" in body


def test_a_rollout_left_behind_is_rolled_back_before_the_next_candidate_is_deployed(ops_server, request):
    """Its task was killed mid-step: the split stayed in the server and its record says running. The next
    deploy clears the split, takes the old candidate out and records that rollout as aborted."""
    from mlspec.release import Release
    from mlspec.rollout.record import RolloutRecord, active_rollout, save_record

    model = publish(unique(request), [1, 1, 1], SHADOW_AND_CANARY)
    deployed_candidate(model)
    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    release = Release.open(model.spec)
    release.set_traffic({"weights": {"1": 50, "2": 50}, "shadow": {"version": "2", "percent": 100}})
    assert active_rollout(model.registry(), model.name).version == 2
    done = release.roll_back_abandoned(3)
    assert "cleared the traffic split" in done and "abandoned rollout of version 2" in done
    assert traffic_of(model) == {"weights": {"1": 100}, "shadow": None}
    record = record_of(model)
    assert record["state"] == "aborted" and record["steps"][-1]["by"] == "mlspec: abandoned"
    assert active_rollout(model.registry(), model.name) is None
    assert release.roll_back_abandoned(3) == ""  # nothing left behind now


def test_the_deploy_of_a_rollout_candidate_first_rolls_back_a_rollout_left_behind(ops_server, request):
    from mlspec.operators.deploy import DeployModelOperator
    from mlspec.release import Release
    from mlspec.rollout.record import RolloutRecord, save_record

    model = publish(unique(request), [1, 1, 1], SHADOW_AND_CANARY)
    deployed_candidate(model)
    save_record(model.registry(), model.name, RolloutRecord(2, 1, "rollback"))
    Release.open(model.spec).set_traffic({"weights": {"1": 50, "2": 50}})
    deploy = DeployModelOperator(task_id="deploy", spec=model.spec.to_dict(), stored={"version": 3, "uri": model.uris[3]})
    deployment = deploy.run({"run_id": "manual__next", "dag_run": None, "ti": None})
    assert deployment["version"] == 3 and deployment["previous_version"] == 1
    assert traffic_of(model)["weights"] == {"1": 100}
    assert record_of(model)["state"] == "aborted"


def test_a_cleared_rollout_task_keeps_the_steps_of_its_earlier_tries(ops_server, request):
    from airflow.sdk.exceptions import TaskDeferred

    from mlspec.rollout.record import RolloutRecord, save_record

    model = publish(unique(request), [1, 1], SHADOW_AND_CANARY)
    deployment = deployed_candidate(model)
    earlier = RolloutRecord(2, 1, "rollback")
    earlier.add_step("shadow", percent=100, outcome="failed")
    earlier.state = "rolled_back"
    save_record(model.registry(), model.name, earlier)
    with pytest.raises(TaskDeferred):  # the first step's traffic is set; its trigger would watch it
        rollout_task(model, deployment).execute({"run_id": "manual__cleared"})
    record = record_of(model)
    assert record["state"] == "running"
    assert [(s["kind"], s["outcome"]) for s in record["steps"]] == [("shadow", "failed"), ("shadow", "waiting")]


def test_a_step_window_starts_when_its_traffic_is_set_and_survives_a_triggerer_restart(ops_server, request):
    """The task hands its trigger the metrics as the step began (plain JSON through Airflow's serde); a trigger
    rebuilt without them (an older deferral) bakes a whole bake from its own first read, never passing at
    once on a few seconds of traffic because the step began long ago."""
    import time

    from airflow.sdk.exceptions import TaskDeferred
    from airflow.sdk.serde import deserialize, serialize

    from mlspec.triggers.rollout import RolloutStepTrigger, snapshot_from_json

    model = publish(unique(request), [1, 1], "rollout:\n  canary: {steps: [50, 100], bake: 2s}\n"
                    "  gates: {agreement: 0.95, min_requests: 20}\n")
    with pytest.raises(TaskDeferred) as deferred:
        rollout_task(model, deployed_candidate(model)).execute({"run_id": "manual__window"})
    kwargs = deserialize(serialize(deferred.value.trigger.serialize()[1]))
    snapshot = snapshot_from_json(kwargs["window_start"])
    assert snapshot and all(isinstance(value, float) for value in snapshot.values())
    # every series names its model and version, but the server's start-time gauge (one per process)
    assert all(labels for (name, labels) in snapshot if name != METRIC_START_TIME)
    restarted = RolloutStepTrigger(**{**kwargs, "window_start": None, "started_at": time.time() - 60})
    with LoadGenerator(ops_server.url, model.name, BODIES, rate=150, workers=2):
        began = time.monotonic()
        event = asyncio.run(first_event(restarted))
        took = time.monotonic() - began
    assert event["status"] == "pass" and took >= 2.0, (event["status"], took)


def test_without_per_version_metrics_a_step_bakes_then_checks_the_candidate_is_routed(ops_home, request):
    """KServe (metrics_url None) with metrics.source server: the trigger reads no metrics (the endpoint has none
    of mlspec's), it passes once baked, and the task checks the platform routes the candidate its share."""
    import time

    from mlspec.operators.rollout import readiness_verdict
    from mlspec.rollout.plan import Step
    from mlspec.serving import Deployment
    from mlspec.triggers.rollout import RolloutStepTrigger

    spec = spec_for(unique(request), SHADOW_AND_CANARY)
    trigger = RolloutStepTrigger(spec=spec.to_dict(), spec_file="", candidate=2, production=1,
                                 step={"kind": "canary", "percent": 50, "bake_s": 1}, started_at=time.time(),
                                 endpoint_url=f"http://127.0.0.1:{free_port()}", carry={"index": 0},
                                 readiness_only=True)
    began = time.monotonic()
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "pass" and event["checks"] == [] and time.monotonic() - began >= 1.0
    candidate = Deployment(platform="kserve", model_name="m", version=2, endpoint_url="", served_model_name="m",
                           previous_version=1)
    step = Step("canary", 50, 1)
    ready = readiness_verdict(event, step, candidate, {"weights": {"1": 50, "2": 50}, "shadow": None})
    assert ready["status"] == "pass" and ready["checks"][0]["passed"]
    # KServe sends the share of a revision that is not ready to production: the step fails on readiness.
    late = readiness_verdict(event, step, candidate, {"weights": {"1": 100, "2": 0}, "shadow": None})
    assert late["status"] == "fail" and late["checks"][0]["line"].startswith("readiness: version 2 routed 0% of 50%")
