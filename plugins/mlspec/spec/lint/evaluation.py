"""evaluation: metrics that fit the task, thresholds a model can meet, a champion gate on a computed metric."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.vocabulary import METRICS, metrics_for


def check_evaluation(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    computed = spec["evaluation"]["metrics"]
    task = spec["model"]["task"]
    champion = spec["evaluation"]["champion"]
    if champion is not None and champion["metric"] not in computed:
        yield doc.problem(
            ("evaluation", "champion", "metric"),
            f"the champion gate compares {champion['metric']}, which is not computed; evaluation.metrics has {', '.join(computed)}",
        )
    for index, metric in enumerate(computed):
        if METRICS[metric].task != task:
            yield doc.problem(
                ("evaluation", "metrics", index), f"{metric} is a {METRICS[metric].task} metric; for {task} use {', '.join(metrics_for(task))}"
            )
    for metric, bounds in spec["evaluation"]["thresholds"].items():
        path = ("evaluation", "thresholds", metric)
        if metric not in computed:
            yield doc.problem(path, f"threshold on `{metric}`, which is not computed; evaluation.metrics has {', '.join(computed)}", at_key=True)
        low, high = bounds.get("min"), bounds.get("max")
        if low is not None and high is not None and low > high:
            yield doc.problem(path, f"min {low} is greater than max {high}; no model could pass")
        if metric in METRICS and METRICS[metric].bounded:
            for bound, value in (("min", low), ("max", high)):
                if value is not None and not 0 <= value <= 1:
                    yield doc.problem(path + (bound,), f"{metric} lies between 0 and 1, so a {bound} of {value} can never be met")
