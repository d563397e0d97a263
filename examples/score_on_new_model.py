"""A downstream DAG that runs whenever mlspec puts a new version of a model into production.

mlspec's promote task declares the Asset ``x-mlspec://<model>`` as its outlet, so every promoted version
is an asset event whose extra carries the version, the stored version folder (``stored_uri``), the test
metrics, the endpoint and its ``infer_url``. A run where the champion holds promotes nothing and emits
no event. This DAG is scheduled on that Asset; its one task reads the event and scores a few rows
(each feature's training mean, and one standard deviation either side, from the version's
``input_schema.json``) against the endpoint through the Open Inference Protocol.

Not in dags/: copy it there (or point a DAG bundle at examples/) to use it. The model is
``MLSPEC_SCORE_MODEL`` (default ``iris-forest``); ``build_scoring_dag(model)`` makes one for any model.
"""

from __future__ import annotations

import logging
import os

from airflow.sdk import DAG, Asset, task

log = logging.getLogger(__name__)


def model_asset(model: str) -> Asset:
    """The Asset mlspec's promote task emits for `model` (the same one: mlspec.operators.promote.model_asset)."""
    return Asset(name=f"x-mlspec://{model}", uri=f"x-mlspec://{model}")


def rows_around_the_training_means(input_schema: dict) -> list[list[float]]:
    """Three rows: every feature at its training mean, one std below and one above (kept within min..max)."""

    def clip(value: float, feature: dict) -> float:
        low, high = feature.get("min"), feature.get("max")
        value = max(value, low) if low is not None else value
        return min(value, high) if high is not None else value

    features = input_schema["features"]
    return [
        [clip((f["mean"] or 0.0) + k * (f["std"] or 0.0), f) for f in features] for k in (0.0, -1.0, 1.0)
    ]


def score(event_extra: dict, rows: list[list[float]], input_schema: dict) -> dict:
    """POST the rows to the version's infer_url; the outputs by name.

    The infer_url comes from the event, so it gets a token only when it is the configured model server
    (MLSPEC_SERVER_URL): mlspec.serving.credentials.token_for never sends the server's token elsewhere.
    """
    import httpx

    from mlspec.serving.credentials import token_for

    token = token_for(event_extra["infer_url"], field="the asset event's infer_url")

    request = {
        "inputs": [{
            "name": input_schema["name"],
            "shape": [len(rows), len(rows[0])],
            "datatype": input_schema.get("datatype", "FP32"),
            "data": [value for row in rows for value in row],
        }]
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(event_extra["infer_url"], json=request, headers=headers, timeout=30)
    response.raise_for_status()
    answer = response.json()
    return {output["name"]: output["data"] for output in answer["outputs"]} | {
        "model_version": answer.get("model_version")
    }


def build_scoring_dag(model: str) -> DAG:
    asset = model_asset(model)
    with DAG(
        dag_id=f"score_on_new_{model}".replace("-", "_"),
        description=f"Scores a few rows whenever a new version of {model} goes into production",
        schedule=[asset],
        catchup=False,
        tags=["mlspec-example", "downstream"],
        doc_md=__doc__,
    ) as dag:

        @task(inlets=[asset])
        def score_new_version(**context) -> dict:
            """Read the newest production event of the model (the triggering one, else the latest known) and score."""
            import json

            from mlspec.storage import open_store

            triggering = context.get("triggering_asset_events") or {}
            events = list(triggering.get(asset, []))
            if not events:  # a manual run (or dag.test): the latest event of the asset
                events = list(context["inlet_events"][asset])
            if not events:
                raise ValueError(f"no asset event for {asset.uri} yet: run the {model} DAG until it promotes")
            extra = dict(events[-1].extra)
            input_schema = json.loads(open_store(extra["stored_uri"]).read_uri(f"{extra['stored_uri']}/input_schema.json"))
            rows = rows_around_the_training_means(input_schema)
            outputs = score(extra, rows, input_schema)
            log.info("%s version %s (test metrics %s) scored %d rows: %s",
                     model, extra["version"], extra["metrics"], len(rows), outputs)
            return {"model": model, "version": extra["version"], "rows": rows, "outputs": outputs}

        score_new_version()
    return dag


dag = build_scoring_dag(os.environ.get("MLSPEC_SCORE_MODEL", "iris-forest"))
