"""The parameters one run of a spec's DAG may set: its trigger form, `mlspec run --param k=v`, and the
check that a run's configuration holds nothing else.

- what the spec's framework offers (its `run_parameters`): Keras `epochs` and `learning_rate`
  (training.epochs, training.optimizer.learning_rate); for a framework with `model.params`, every
  parameter the spec sets there, typed from its parameter table with the spec's value as its default.
  Parameters the spec leaves out are not offered: to vary one per run, set it in model.params (at
  its default) and the form offers it;
- a tuned spec: `trials`; a setting that tuning.space varies is left out (a trial sets it);
- every spec: `accept_drift` (false): train even when validate_data finds drift or schema problems that the
  spec's `validation` says fail on (`mlspec run SPEC --accept-drift`); validate_data reads it.

A run's configuration key that is not one of these fails the run's first task at once, listing the
accepted keys (Airflow itself accepts any key at trigger time). TrainingPlan.from_spec applies the
values.

Pure Python: no Airflow, no scikit-learn (the compiler calls this while Airflow parses dags/).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any

from mlspec.errors import MlspecError
from mlspec.ml.frameworks import RunParam, framework_of
from mlspec.ml.frameworks.param_schema import describe, validator
from mlspec.tuning import parse_path


class RunParamError(MlspecError):
    """A run's configuration names a key that is not a parameter, or gives one a value of the wrong type."""


def form_schema(param: RunParam) -> dict[str, Any]:
    """The parameter's schema with a top-level "type" the Airflow form can pick a field by (the table's
    anyOf alternatives keep deciding what is valid)."""
    schema = dict(param.schema)
    if "type" not in schema:
        types = _types(schema)
        if types:
            schema["type"] = types[0] if len(types) == 1 else types
    return schema


ACCEPT_DRIFT = RunParam(
    "accept_drift", False, {"type": "boolean"},
    "Retrain even when validate_data finds drift or schema problems that validation says fail on; the version "
    "records that the drift was accepted",
    "validation",  # what it overrides for one run: validation's fail, which becomes a warning
)


def run_parameters(spec: Any) -> dict[str, RunParam]:
    """name -> RunParam for a ModelSpec, in form order (accept_drift last: every spec has it)."""
    params = framework_of(spec).run_parameters(spec.resolved)
    if spec.tuning is not None:
        tuned = [parse_path(path) for path in spec.tuning.space]
        for name, param in list(params.items()):
            target = parse_path(param.target)
            if any(target[: len(p)] == p or p[: len(target)] == target for p in tuned):
                del params[name]  # a trial sets it
        params["trials"] = RunParam(
            "trials", spec.tuning.trials, {"type": "integer", "minimum": 1, "maximum": 1000},
            "Tuning trials for this run (tuning.trials)", "tuning.trials",
        )
    params[ACCEPT_DRIFT.name] = ACCEPT_DRIFT
    return params


def accepted_keys_text(params: Mapping[str, RunParam]) -> str:
    return ", ".join(params) if params else "none (this spec has no run parameters)"


def check_conf(spec: Any, conf: Mapping[str, Any] | None, *, how: str = "the run's configuration") -> None:
    """RunParamError naming the keys of `conf` that are not parameters (with the accepted keys) or
    values that do not fit their parameter."""
    params = run_parameters(spec)
    conf = dict(conf or {})
    unknown = [key for key in conf if key not in params]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), list(params), n=1, cutoff=0.6)
            hints.append(f"`{key}`" + (f" (did you mean `{close[0]}`?)" if close else ""))
        raise RunParamError(
            f"{how} has {'a key' if len(unknown) == 1 else 'keys'} that {'is' if len(unknown) == 1 else 'are'} "
            f"not a parameter of {spec.name}: {', '.join(hints)}. Accepted keys: {accepted_keys_text(params)}"
            + _why_not(spec)
        )
    problems = [problem for key, value in conf.items() if (problem := value_problem(params[key], value))]
    if problems:
        raise RunParamError(f"{how}: " + "; ".join(problems))


def value_problem(param: RunParam, value: Any) -> str:
    """Why `value` does not fit `param` ("" when it does); integers are strict (3.0 is not 3)."""
    if validator(param.schema).is_valid(value):
        return ""
    return f"`{param.name}` must be {describe(param.schema)}, got {_show(value)}"


def parse_cli_value(text: str) -> Any:
    """`--param k=v`'s value: JSON when it reads as JSON (3, 0.1, 1e-3, null, true, [64, 32]), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _why_not(spec: Any) -> str:
    if framework_of(spec).param_schema is None:
        return ""
    where = spec.source_file or "the spec"
    return f". To vary another model.params parameter per run, set it in model.params of {where}"


def _types(schema: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    branches = schema.get("anyOf", [schema])
    for branch in branches:
        kinds = [branch["type"]] if isinstance(branch.get("type"), str) else []
        if "enum" in branch:
            kinds = [_json_type(v) for v in branch["enum"]]
        for kind in kinds:
            if kind not in found:
                found.append(kind)
    # "null" last: Airflow's form picks its field by the first type.
    return [t for t in found if t != "null"] + (["null"] if "null" in found else [])


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)
