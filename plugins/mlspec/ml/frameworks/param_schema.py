"""One `model.params` value's JSON Schema fragment, checked and said in words: what every parameter
table (scikit-learn's, a boosting library's) shares. Importing it imports no jsonschema until a
value is checked."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any


def validator(schema: Mapping[str, Any]) -> Any:
    """A jsonschema validator for a parameter fragment, with scikit-learn's strict integers
    (2.0 is a number but not an integer, as `Interval(Integral, ...)` sees it)."""
    return _validator_class()(schema)


@cache
def _validator_class() -> Any:
    from jsonschema import Draft202012Validator, validators

    def is_integer(_checker: Any, instance: Any) -> bool:
        return isinstance(instance, int) and not isinstance(instance, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", is_integer)
    return validators.extend(Draft202012Validator, type_checker=checker)


def describe(schema: Mapping[str, Any]) -> str:
    """A parameter fragment in words: "an integer >= 1 or null"."""
    parts = [_describe_one(branch) for branch in schema.get("anyOf", [schema])]
    if len(parts) == 1:
        return parts[0]
    return f"{', '.join(parts[:-1])} or {parts[-1]}"


def _describe_one(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        options = [show_value(v) for v in schema["enum"]]
        return options[0] if len(options) == 1 else f"one of {', '.join(options)}"
    kind = schema.get("type")
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        return "a string"
    if kind == "object":
        return "a mapping"
    if kind == "array":
        items = schema.get("items")
        return f"a list of {_plural(_describe_one(items))}" if items else "a list"
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        if schema.get("not") == {"type": "integer"}:
            noun = "a float"  # scikit-learn's RealNotInt: 1.0 is allowed, 1 is not
        return noun + _range(schema)
    return "a value"


def _plural(words: str) -> str:
    for single, plural in (("an integer", "integers"), ("a number", "numbers"), ("a float", "floats")):
        if words.startswith(single):
            return plural + words[len(single) :]
    return words


def _range(schema: Mapping[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        left = "[" if "minimum" in schema else "("
        right = "]" if "maximum" in schema else ")"
        return f" in {left}{_num(low)}, {_num(high)}{right}"
    if low is not None:
        return f" >= {_num(low)}" if "minimum" in schema else f" > {_num(low)}"
    if high is not None:
        return f" <= {_num(high)}" if "maximum" in schema else f" < {_num(high)}"
    return ""


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def show_value(value: Any) -> str:
    """A value as YAML writes it: null, true, 200.0, 'gini'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
