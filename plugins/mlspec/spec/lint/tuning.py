"""tuning: the objective is reported by the framework, every space path is a setting, every value a
distribution can produce is valid there (and keeps the spec valid), grid has only choice lists."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator

from mlspec import tuning as rules
from mlspec.ml.frameworks import framework_of
from mlspec.ml.frameworks.param_schema import describe
from mlspec.ml.frameworks.param_schema import validator as value_validator
from mlspec.spec.errors import SpecProblem
from mlspec.spec.lint.model import check_framework, owners_of
from mlspec.spec.schema import load_schema
from mlspec.spec.yaml_loader import LoadedYaml

# Checks that change the spec in ways a tuned value could break; each is run again on the spec as a trial
# would change it, and the errors it reports then (and not of the spec itself) are the tuned value's problem.
_TRIAL_CHECKS = (check_framework,)


def check_tuning(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """tuning: the objective is reported by the framework, every space path is a setting, every value a
    distribution can produce is valid there (and keeps the spec valid), grid has only choice lists."""
    tuning = spec.get("tuning")
    if not tuning:
        return
    framework, task = spec["model"]["framework"], spec["model"]["task"]
    objective = tuning["objective"]
    metric, direction = objective["metric"], objective.get("direction")
    reported = rules.objective_metrics(framework, task)
    if metric not in reported:
        yield doc.problem(
            ("tuning", "objective", "metric"),
            f"{framework} does not report {metric} for {task} on the validation split; use one of {', '.join(reported)}",
        )
    elif spec["data"]["split"]["validation"] == 0:
        yield doc.problem(
            ("tuning", "objective", "metric"),
            f"{metric} is measured on the validation split, but data.split.validation is 0; set it above 0",
        )
    elif direction and direction != rules.metric_direction(metric):
        natural = rules.metric_direction(metric)
        yield doc.problem(
            ("tuning", "objective", "direction"),
            f"{metric} is better when {'higher' if natural == 'maximize' else 'lower'}, so {direction} would pick the worst "
            f"trial; set {natural} or leave direction out",
        )
    if tuning["parallel"] > tuning["trials"]:
        yield doc.problem(
            ("tuning", "parallel"), f"parallel {tuning['parallel']} is more than trials {tuning['trials']}; at most {tuning['trials']} trials run at once"
        )
    if tuning.get("connection") and tuning["strategy"] != "optuna":
        yield doc.problem(
            ("tuning", "connection"), f"the connection names Optuna's study database; strategy {tuning['strategy']} keeps no study", at_key=True
        )
    for key, dist in tuning["space"].items():
        yield from _space_entry(doc, spec, tuning["strategy"], key, dist)


def _space_entry(doc: LoadedYaml, spec: dict, strategy: str, key: str, dist: dict) -> Iterator[SpecProblem]:
    where = ("tuning", "space", key)
    ((kind, args),) = dist.items()
    if strategy == "grid" and kind != "choice":
        yield doc.problem(
            where + (kind,),
            f"strategy grid takes the product of choice lists, and {kind} is a range; list the values with choice, "
            "or use strategy random or optuna",
            at_key=True,
        )
        return
    if kind != "choice":
        low, high = args
        if (low > high) if kind == "int_uniform" else (low >= high):
            bound = "at most" if kind == "int_uniform" else "less than"
            yield doc.problem(where + (kind,), f"low {low} must be {bound} high {high}")
            return
    try:
        parts = rules.parse_path(key)
    except ValueError as exc:
        yield doc.problem(where, str(exc), at_key=True)
        return
    refused = _untunable(spec, parts)
    if refused:
        yield doc.problem(where, refused, at_key=True)
        return
    field, missing = _tuned_field(spec, parts)
    if missing:
        yield doc.problem(where, missing, at_key=True)
        return
    is_valid, describe = field
    probes = rules.probe_values(dist)
    for position, value in enumerate(probes):
        problem = describe(value) if not is_valid(value) else None
        if problem is None:
            continue
        if kind == "choice":
            yield doc.problem(where + ("choice", position), f"{_show(value)} is not a valid {key}: {problem}")
        else:
            yield doc.problem(
                where + (kind,), f"{kind} [{args[0]}, {args[1]}] can draw {_show(value)}, which is not a valid {key}: {problem}"
            )
        return
    # Each value on its own must leave a spec the other checks accept (ranges: their ends).
    baseline = {(p.path, p.message) for check_fn in _TRIAL_CHECKS for p in check_fn(doc, spec) if p.severity != "warning"}
    for position, value in enumerate(probes if kind == "choice" else [probes[0], probes[-1]]):
        try:
            variant = rules.apply_overrides(spec, {key: value})
        except rules.TuningError as exc:
            yield doc.problem(where, str(exc), at_key=True)
            return
        for check_fn in _TRIAL_CHECKS:
            for problem in check_fn(doc, variant):
                if (problem.path, problem.message) in baseline or problem.severity == "warning":
                    continue
                at = where + ("choice", position) if kind == "choice" else where + (kind,)
                yield doc.problem(at, f"with {key} = {_show(value)}: {problem.path}: {problem.message}")
                return


def _show(value: object) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _untunable(spec: dict, parts: tuple) -> str:
    framework = framework_of(spec)
    if parts[0] not in rules.TUNABLE_ROOTS:
        return "only model and training settings can be tuned (every trial is scored on the same data and split)"
    if len(parts) == 1:
        return f"name a setting inside {parts[0]}, e.g. {framework.tune_example}"
    if tuple(parts[:2]) in rules.UNTUNABLE:
        return f"{parts[0]}.{parts[1]} cannot be tuned: the trials are compared as one kind of model"
    owners = owners_of(f"{parts[0]}.{parts[1]}", besides=framework)
    if owners:
        return f"{parts[0]}.{parts[1]} is a {owners} setting; with framework {framework.name} tune {framework.tune_hint}"
    return ""


def _tuned_field(spec: dict, parts: tuple):
    """((is_valid, describe_problem), "") for the field at `parts`, or (None, why it is not a setting).

    model.params.<name>: the parameter's JSON Schema from the framework's parameter table (`param_schema`);
    anything else: the field's JSON Schema, walked beside the spec's data.
    """
    framework = framework_of(spec)
    if parts[:2] == ("model", "params") and len(parts) > 2 and framework.param_schema is not None:
        if len(parts) != 3 or not isinstance(parts[2], str):
            return None, f"a {framework.library} parameter is model.params.<name>"
        try:
            schema = framework.param_schema(spec["model"], parts[2])
        except KeyError as exc:
            return None, str(exc.args[0])
        except ValueError as exc:
            return None, str(exc)
        checker = value_validator(schema)
        return (checker.is_valid, lambda _value: f"{parts[2]} must be {describe(schema)}"), ""

    node, data = load_schema(), spec
    for depth, part in enumerate(parts):
        here = _tuning_path(parts[: depth + 1])
        node = _branch_for(node, data)
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                size = len(data) if isinstance(data, list) else 0
                return None, f"{here} does not exist: {_tuning_path(parts[:depth])} has {size} item{'s' if size != 1 else ''}"
            items = node.get("items", {}) if isinstance(node.get("items"), dict) else {}
            data = data[part]
            node = _branch_for(items, data)
            continue
        if not isinstance(data, dict):
            parent = _tuning_path(parts[:depth])
            kind = "null" if data is None else type(data).__name__
            return None, f"{here} does not exist: {parent} is {kind}; set it in the spec to tune what is inside it"
        properties = node.get("properties", {})
        if part not in properties:
            close = difflib.get_close_matches(part, list(properties), n=1, cutoff=0.6)
            hint = f"did you mean {_tuning_path(parts[:depth] + (close[0],))}? " if close else ""
            parent = _tuning_path(parts[:depth]) or "the spec"
            return None, f"{here} does not exist; {hint}{parent} has {', '.join(properties) or 'no settings'}"
        node, data = properties[part], data.get(part)

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    checker = Draft202012Validator(node)
    return (checker.is_valid, lambda value: best_match(checker.iter_errors(value)).message), ""


def _branch_for(node: dict, data: object) -> dict:
    """The oneOf branch of `node` that describes `data` (a layer's branch by its key, an object's branch)."""
    branches = node.get("oneOf")
    if not branches:
        return node
    if isinstance(data, dict):
        if len(data) == 1:
            (key,) = data
            for branch in branches:
                if branch.get("required") == [key]:
                    return branch
        for branch in branches:
            if branch.get("type") == "object":
                return branch
    return node


def _tuning_path(parts: tuple) -> str:
    return rules.format_path(parts)
