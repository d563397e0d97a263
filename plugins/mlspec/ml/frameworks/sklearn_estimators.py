"""The scikit-learn estimators a spec may name, and their parameters, without importing scikit-learn.

`model: {framework: sklearn, task: ..., estimator: random_forest, params: {...}}` is checked here at
lint and DAG-parse time. The parameter table, sklearn_estimators.json beside this module, is GENERATED from
scikit-learn itself (`python -m mlspec.ml.frameworks.sklearn_estimators --write`): each class's `get_params()`
names and defaults, and its `_parameter_constraints` (scikit-learn's own type and range checks)
turned into one JSON Schema fragment per parameter. tests/frameworks/test_frameworks_sklearn_estimators.py fails when
the committed file differs from a fresh generation, i.e. when scikit-learn changes.

Integers are strict, like scikit-learn's `Interval(Integral, ...)`: `n_estimators: 200.0` is refused.
Parameters with no JSON form (callables, estimator objects) or deprecated by scikit-learn are kept
in the table but refused with a message saying why.

Importing this module imports neither scikit-learn nor jsonschema (checked by a test).
"""

from __future__ import annotations

import difflib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from mlspec.ml.frameworks.param_schema import describe, show_value, validator

TABLE_FILE = Path(__file__).with_name("sklearn_estimators.json")
REGENERATE = "python -m mlspec.ml.frameworks.sklearn_estimators --write"

# spec name -> scikit-learn class (public import path), per task. Every one is fitted and exported with
# skl2onnx by tests/frameworks/test_frameworks_sklearn_estimators.py.
# hist_gradient_boosting is left out: skl2onnx 1.20 cannot convert a HistGradientBoosting* model fitted by
# scikit-learn 1.9 ("AttributeProto.ints: Expected an int, got a boolean"); a strict xfail in that test
# says when it can come back.
ESTIMATORS: dict[str, dict[str, str]] = {
    "classification": {
        "random_forest": "sklearn.ensemble.RandomForestClassifier",
        "extra_trees": "sklearn.ensemble.ExtraTreesClassifier",
        "gradient_boosting": "sklearn.ensemble.GradientBoostingClassifier",
        "logistic_regression": "sklearn.linear_model.LogisticRegression",
        "linear_svc": "sklearn.svm.LinearSVC",
        "k_neighbors": "sklearn.neighbors.KNeighborsClassifier",
        "mlp": "sklearn.neural_network.MLPClassifier",
        "decision_tree": "sklearn.tree.DecisionTreeClassifier",
    },
    "regression": {
        "random_forest": "sklearn.ensemble.RandomForestRegressor",
        "extra_trees": "sklearn.ensemble.ExtraTreesRegressor",
        "gradient_boosting": "sklearn.ensemble.GradientBoostingRegressor",
        "ridge": "sklearn.linear_model.Ridge",
        "lasso": "sklearn.linear_model.Lasso",
        "linear_regression": "sklearn.linear_model.LinearRegression",
        "k_neighbors": "sklearn.neighbors.KNeighborsRegressor",
        "mlp": "sklearn.neural_network.MLPRegressor",
        "decision_tree": "sklearn.tree.DecisionTreeRegressor",
    },
}

_DEPRECATED = "deprecated by scikit-learn (it warns, and a later version removes it); leave it out"

# Array parameters whose items scikit-learn checks only at fit time; their item type, for lint.
_ITEMS = {"hidden_layer_sizes": {"type": "integer", "minimum": 1}}


# --------------------------------------------------------------------------- lookups (pure Python)


def estimator_names(task: str) -> tuple[str, ...]:
    """The estimator names a spec may use for `task` (empty for an unknown task)."""
    return tuple(ESTIMATORS.get(task, {}))


def estimator_class(task: str, name: str) -> str:
    """Dotted import path of the scikit-learn class, e.g. "sklearn.ensemble.RandomForestClassifier".

    KeyError (with the known names) for an unknown task or estimator.
    """
    try:
        return ESTIMATORS[task][name]
    except KeyError:
        raise KeyError(_unknown_estimator(task, name)) from None


@cache
def _table() -> dict[str, Any]:
    return json.loads(TABLE_FILE.read_text())


def _params(task: str, name: str) -> dict[str, Any]:
    return _table()["estimators"][task][name]["params"]


def sklearn_version() -> str:
    """The scikit-learn version sklearn_estimators.json was generated from."""
    return str(_table()["sklearn"])


def estimator_params(task: str, name: str) -> dict[str, dict[str, Any]]:
    """Every parameter of an estimator: {name: {"default", "allowed" (words) or "refused" (why)}}.

    For `mlspec schema --estimators` style listings; KeyError for an unknown estimator.
    """
    estimator_class(task, name)
    listing: dict[str, dict[str, Any]] = {}
    for param, entry in sorted(_params(task, name).items()):
        item: dict[str, Any] = {"default": entry["default"]}
        if "refused" in entry:
            item["refused"] = entry["refused"]
        else:
            item["allowed"] = describe(entry["schema"])
        listing[param] = item
    return listing


def param_schema(task: str, name: str, param: str) -> dict[str, Any]:
    """The JSON Schema fragment a value of `param` must match (integers strict; see `validator`).

    KeyError for an unknown estimator or parameter, ValueError for a parameter a spec may not set.
    """
    estimator_class(task, name)
    params = _params(task, name)
    if param not in params:
        raise KeyError(_unknown_param(name, param, params))
    entry = params[param]
    if "refused" in entry:
        raise ValueError(f"`{param}` cannot be set from a spec: {entry['refused']}")
    return entry["schema"]


def check_params(task: str, name: str, params: Mapping[str, Any]) -> list[tuple[tuple, str]]:
    """Problems with `model.params` for estimator `name`: one `(path suffix, message)` each.

    The suffix is relative to model.params, e.g. ("n_estimatorz",); `()` means the estimator name
    itself is wrong (the problem is at model.estimator). An empty list means the params are fine.
    """
    if name not in ESTIMATORS.get(task, {}):
        return [((), _unknown_estimator(task, name))]
    if not isinstance(params, Mapping):
        return [((), f"model.params must be a mapping of {name} parameters, got {show_value(params)}")]
    known = _params(task, name)
    problems: list[tuple[tuple, str]] = []
    for param in sorted(params, key=str):
        value = params[param]
        if param not in known:
            problems.append(((param,), _unknown_param(name, param, known)))
            continue
        entry = known[param]
        if "refused" in entry:
            problems.append(((param,), f"`{param}` cannot be set from a spec: {entry['refused']}"))
            continue
        if not validator(entry["schema"]).is_valid(value):
            hint = _string_hint(value, entry["schema"])
            message = f"`{param}` must be {describe(entry['schema'])}, got {show_value(value)}{hint}"
            problems.append(((param,), message))
    return problems


def _unknown_estimator(task: str, name: str) -> str:
    if task not in ESTIMATORS:
        return f"unknown task {task!r}; use one of {', '.join(ESTIMATORS)}"
    names = estimator_names(task)
    other = [t for t in ESTIMATORS if t != task and name in ESTIMATORS[t]]
    if other:
        return f"{name} is a {other[0]} estimator; for {task} use one of {', '.join(names)}"
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"unknown estimator `{name}` for {task}; {hint}known: {', '.join(names)}"


def _unknown_param(name: str, param: Any, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(str(param), list(known), n=1, cutoff=0.6)
    if close:
        return f"unknown parameter `{param}` for {name}; did you mean `{close[0]}`?"
    return f"unknown parameter `{param}` for {name}; its parameters are: {', '.join(sorted(known))}"


def _string_hint(value: Any, schema: Mapping[str, Any]) -> str:
    # YAML 1.1 reads 1e-3 (no dot) as a string.
    if isinstance(value, str) and "number" in _types(schema):
        try:
            float(value)
        except ValueError:
            return ""
        return f" (a string: YAML reads {value} as text; write it with a dot, e.g. {_as_yaml_float(value)})"
    return ""


def _as_yaml_float(text: str) -> str:
    """`1e-3` -> `1.0e-3`, `1e3` -> `1.0e+3`: YAML 1.1 floats need a dot and a signed exponent."""
    mantissa, _, exponent = text.strip().lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    if exponent and exponent[0] not in "+-":
        exponent = "+" + exponent
    return f"{mantissa}e{exponent}" if exponent else mantissa


def _types(schema: Mapping[str, Any]) -> set[str]:
    found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
    for branch in schema.get("anyOf", ()):
        found |= _types(branch)
    return found


# --------------------------------------------------------------------------- generation (imports sklearn)


def generate() -> dict[str, Any]:
    """The table, read from the installed scikit-learn."""
    import sklearn

    estimators: dict[str, dict[str, Any]] = {}
    for task, names in ESTIMATORS.items():
        estimators[task] = {}
        for name, path in names.items():
            cls = _import_class(path)
            estimators[task][name] = {"class": path, "params": _class_params(cls)}
    return {
        "about": f"Generated by `{REGENERATE}` from scikit-learn's parameter constraints; do not edit.",
        "sklearn": sklearn.__version__,
        "estimators": estimators,
    }


def render(table: Mapping[str, Any]) -> str:
    """The table as committed: sorted keys, one parameter per line, so diffs stay readable."""
    lines = ["{"]
    head = [f" {json.dumps(k)}: {json.dumps(table[k])}," for k in sorted(table) if k != "estimators"]
    lines.extend(head)
    lines.append(' "estimators": {')
    tasks = sorted(table["estimators"])
    for t_index, task in enumerate(tasks):
        lines.append(f"  {json.dumps(task)}: {{")
        names = sorted(table["estimators"][task])
        for n_index, name in enumerate(names):
            entry = table["estimators"][task][name]
            lines.append(f"   {json.dumps(name)}: {{")
            lines.append(f'    "class": {json.dumps(entry["class"])},')
            lines.append('    "params": {')
            params = sorted(entry["params"])
            for p_index, param in enumerate(params):
                body = json.dumps(entry["params"][param], sort_keys=True, allow_nan=False)
                lines.append(f"     {json.dumps(param)}: {body}{',' if p_index < len(params) - 1 else ''}")
            lines.append("    }")
            lines.append(f"   }}{',' if n_index < len(names) - 1 else ''}")
        lines.append(f"  }}{',' if t_index < len(tasks) - 1 else ''}")
    lines.append(" }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _import_class(path: str) -> type:
    from importlib import import_module

    module, _, attr = path.rpartition(".")
    return getattr(import_module(module), attr)


def _class_params(cls: type) -> dict[str, Any]:
    defaults = cls().get_params(deep=False)
    constraints = getattr(cls, "_parameter_constraints", {})
    params: dict[str, Any] = {}
    for param, default in defaults.items():
        entry: dict[str, Any] = {"default": _json_value(default)}
        if param not in constraints:
            entry["refused"] = "scikit-learn declares no constraints for it"
        elif _is_deprecated(default, constraints[param]):
            entry["refused"] = _DEPRECATED
        else:
            branches, dropped = _schema_branches(param, constraints[param])
            if branches:
                entry["schema"] = branches[0] if len(branches) == 1 else {"anyOf": branches}
            else:
                entry["refused"] = f"it takes {' or '.join(dropped)}, which a spec cannot express"
        params[param] = entry
    return params


def _is_deprecated(default: Any, constraints: Sequence[Any]) -> bool:
    from sklearn.utils._param_validation import Hidden, StrOptions

    # scikit-learn marks a deprecated parameter by a hidden "deprecated" default.
    return default == "deprecated" and any(
        isinstance(c, Hidden) and isinstance(c.constraint, StrOptions) and default in c.constraint.options
        for c in constraints
    )


def _schema_branches(param: str, constraints: Sequence[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON Schema alternatives for scikit-learn's constraints, and words for those with no JSON form."""
    from numbers import Integral, Real

    from sklearn.utils._param_validation import HasMethods, Hidden, Interval, Options, RealNotInt, StrOptions

    branches: list[dict[str, Any]] = []
    dropped: list[str] = []
    for c in constraints:
        if isinstance(c, Hidden):
            continue  # internal sentinels, not meant for users
        if c is None:
            branch: dict[str, Any] | None = {"type": "null"}
        elif c == "boolean":
            branch = {"type": "boolean"}
        elif c == "random_state":  # a seed, None, or a RandomState object (no JSON form)
            branches.append({"type": "integer", "minimum": 0, "maximum": 2**32 - 1})
            branch = {"type": "null"}
        elif c == "verbose":
            branches.append({"type": "boolean"})
            branch = {"type": "integer", "minimum": 0}
        elif c == "array-like":
            branch = {"type": "array"}
            if param in _ITEMS:
                branch["items"] = _ITEMS[param]
        elif isinstance(c, Interval):
            branch = _interval(c, Integral, RealNotInt)
        elif isinstance(c, StrOptions):
            options = sorted(o for o in c.options if o not in c.deprecated)
            branch = {"enum": options} if options else None
        elif isinstance(c, Options):
            options = sorted(o for o in c.options if o not in c.deprecated and _finite(o))
            branch = {"enum": [_json_value(o) for o in options]} if options else None
            if len(options) < len(c.options):
                dropped.append("infinity")
        elif c is dict:
            branch = {"type": "object"}
        elif c in (list, tuple):
            branch = {"type": "array"}
        elif c is str:
            branch = {"type": "string"}
        elif isinstance(c, type) and issubclass(c, Integral):
            branch = {"type": "integer"}
        elif isinstance(c, type) and issubclass(c, Real):
            branch = {"type": "number"}
        elif c is callable:
            branch, words = None, "a Python callable"
            dropped.append(words)
        elif isinstance(c, HasMethods):
            branch = None
            dropped.append(f"an object with {', '.join(c.methods)}")
        elif isinstance(c, type):
            branch = None
            dropped.append(f"a {c.__name__} object")
        else:
            branch = None
            dropped.append(str(c))
        if branch is not None and branch not in branches:
            branches.append(branch)
    return branches, dropped


def _interval(c: Any, integral: type, real_not_int: type) -> dict[str, Any]:
    if c.type is integral:
        branch: dict[str, Any] = {"type": "integer"}
    else:
        branch = {"type": "number"}
        if c.type is real_not_int:
            branch["not"] = {"type": "integer"}
    if c.left is not None:
        branch["minimum" if c.closed in ("left", "both") else "exclusiveMinimum"] = _json_value(c.left)
    if c.right is not None:
        branch["maximum" if c.closed in ("right", "both") else "exclusiveMaximum"] = _json_value(c.right)
    return branch


def _finite(value: Any) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


def _json_value(value: Any) -> Any:
    """A default or bound as JSON: tuples become lists, numpy scalars Python numbers, inf a string."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _json_value(item())
    return repr(value)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m mlspec.ml.frameworks.sklearn_estimators", description="Generate sklearn_estimators.json from scikit-learn."
    )
    parser.add_argument("--write", action="store_true", help=f"write {TABLE_FILE.name} beside this module")
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file is out of date")
    args = parser.parse_args(argv)
    text = render(generate())
    if args.write:
        TABLE_FILE.write_text(text)
        print(f"wrote {TABLE_FILE} ({len(text)} bytes)")
        return 0
    if args.check:
        current = TABLE_FILE.read_text() if TABLE_FILE.is_file() else ""
        if current != text:
            print(f"{TABLE_FILE.name} is out of date: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
