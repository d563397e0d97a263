"""evaluation: metrics that fit the task, thresholds a model can meet, a champion gate on a computed metric, and a
holdout whose source is a file or a table, checked as data.source is (its templates: lint.templates; a local
holdout file: lint.data.check_local_holdout)."""

from __future__ import annotations

from collections.abc import Iterator

from mlspec.sources import SOURCE_KINDS, source_kind
from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.lint.uris import uri_problem
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


def check_holdout(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """evaluation.holdout's source is a file or a table source (a named data set has no rows of its own to hold
    out), with the rules of its kind, read with data's settings; its query belongs to a sql:// holdout."""
    holdout = spec["evaluation"].get("holdout")
    if holdout is None:
        return
    at = ("evaluation", "holdout")
    source = holdout["source"]
    kind = source_kind(source)
    prefixes = [k.prefix for k in SOURCE_KINDS.values() if k.load_dataset is None]
    tables = ", ".join(prefixes[:-1]) + " or " + prefixes[-1]
    if kind is None:
        yield doc.problem(at + ("source",), f"unsupported holdout source {quote(source)}; use {tables}")
        return
    if kind.load_dataset is not None:
        yield doc.problem(at + ("source",), f"{quote(source)} is a named data set; a holdout is a file or a table: {tables}")
        return
    # The kind's rules, on the holdout's source and query with the data section's other settings (it is read with
    # them): a rule about data.query is about the holdout's query here.
    settings = {**spec["data"], "source": source, "query": holdout.get("query")}
    for field, message in kind.problems(source, quote, settings):
        message = message.replace("data.query", "evaluation.holdout.query")
        if field in ("source", "query"):
            yield doc.problem(at + (field,), message)
        else:
            yield doc.problem(at + ("source",), f"the holdout is read with data.{field}: {message}")
    if kind.read_table is None and holdout.get("query") is not None:
        yield doc.problem(at + ("query",), f"evaluation.holdout.query is read by a sql:// holdout only, not {kind.prefix}")
    problem = uri_problem(source, names_an_object=True)
    if problem:
        yield doc.problem(at + ("source",), problem)
