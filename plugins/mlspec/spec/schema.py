"""JSON Schema validation of a loaded spec, with errors mapped to file:line:col and defaults filled in.

schemas/model-spec.schema.json is the single source of truth for the format; this module only
turns jsonschema's findings into messages a spec author can act on.

Almost every spec is valid, and Airflow checks each edited spec on its next parse, so a valid spec is
recognised by a validator that fastjsonschema compiles from the schema (Python code, about 30x faster
than jsonschema's, built once per process); jsonschema, the reference, runs only when that one
objects, and its findings make the messages. Where the two could disagree the compiled validator is
the stricter one (`$` anchors as `\\Z`; a keyword it does not know means no compiled validator at
all), so it never lets through a spec that jsonschema refuses.
"""

from __future__ import annotations

import difflib
import json
import logging
from functools import cache
from pathlib import Path

from mlspec.ml.frameworks import FRAMEWORKS
from mlspec.plain_data import thaw
from mlspec.spec.errors import QUOTE_CHARS, SpecProblem, quote, shorten
from mlspec.spec.yaml_loader import LoadedYaml, format_path
from mlspec.vocabulary import DEFAULT_LOSS, DEFAULT_METRICS

log = logging.getLogger(__name__)

SCHEMA_FILE = "model-spec.schema.json"


def schema_path() -> Path:
    """The schema beside the project (editable install, plugins/ folder) or inside the wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "schemas" / SCHEMA_FILE, here.parents[1] / "schemas" / SCHEMA_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{SCHEMA_FILE} not found beside the mlspec package")


@cache
def load_schema() -> dict:
    """The schema, with model.framework's words and their description taken from the framework table:
    adding a framework changes no schema file."""
    schema = json.loads(schema_path().read_text())
    framework = schema["properties"]["model"]["properties"]["framework"]
    framework["enum"] = list(FRAMEWORKS)
    framework["description"] = "Training framework: " + ", ".join(
        f"{name} ({entry.title})" for name, entry in FRAMEWORKS.items()
    ) + "."
    return schema


@cache
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema())


# What the compiled (draft-07) validator checks as the 2020-12 schema means it; anything else in the schema
# leaves the spec to jsonschema alone. Annotations are dropped: they validate nothing.
_CHECKED_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "properties", "additionalProperties", "patternProperties", "required",
        "propertyNames", "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems",
        "uniqueItems", "oneOf", "anyOf", "allOf", "not",
    }
)
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "format"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})  # name -> subschema


class _NotCompilable(Exception):
    """The schema uses a keyword the compiled validator would not check as jsonschema does."""


def _draft7_schema(schema: dict) -> dict:
    """The whole schema for fastjsonschema: in draft-07 terms, with each list's schema and each oneOf or anyOf
    branch a definition of its own, which fastjsonschema compiles into a function of its own (in one function
    of thousands of variables, naming a list item or raising a failed branch's error costs 100x more)."""
    definitions: dict = {}
    root = _as_draft7(schema, definitions)
    return {**root, "definitions": definitions, "$schema": "http://json-schema.org/draft-07/schema#"}


def _own_function(node: object, definitions: dict) -> dict:
    name = f"s{len(definitions)}"
    definitions[name] = node
    return {"$ref": f"#/definitions/{name}"}


def _as_draft7(node: object, definitions: dict) -> object:
    """One 2020-12 schema node in draft-07 terms, which fastjsonschema compiles: prefixItems + items become
    items (a list) + additionalItems; const becomes a one-value enum (the same check)."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict):
        raise _NotCompilable(f"a subschema is a {type(node).__name__}")
    out: dict = {}
    for keyword, value in node.items():
        if keyword in _ANNOTATIONS or keyword.startswith("x-"):
            continue
        if keyword not in _CHECKED_KEYWORDS:
            raise _NotCompilable(f"keyword {keyword}")
        if keyword in _SCHEMA_MAPS:
            out[keyword] = {name: _as_draft7(sub, definitions) for name, sub in value.items()}
        elif keyword in ("oneOf", "anyOf"):
            out[keyword] = [_own_function(_as_draft7(sub, definitions), definitions) for sub in value]
        elif keyword in ("allOf", "prefixItems"):
            out[keyword] = [_as_draft7(sub, definitions) for sub in value]
        elif keyword in ("additionalProperties", "propertyNames", "items", "not"):
            out[keyword] = _as_draft7(value, definitions)
        else:
            out[keyword] = value
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if "prefixItems" in out:
        out["additionalItems"] = out.pop("items", True)
        out["items"] = out.pop("prefixItems")
    elif isinstance(out.get("items"), list):
        raise _NotCompilable("items as a list")
    elif isinstance(out.get("items"), dict):
        return _own_function(out, definitions)
    return out


@cache
def _compiled_validator():
    """The schema compiled by fastjsonschema, or None (then jsonschema checks every spec)."""
    try:
        import fastjsonschema

        draft7 = _draft7_schema(load_schema())
        return fastjsonschema.compile(draft7, use_default=False, use_formats=False, detailed_exceptions=False)
    except Exception as exc:  # noqa: BLE001 - a speed-up only: jsonschema still checks every spec
        log.warning("specs are checked by jsonschema alone (the schema could not be compiled: %s)", exc)
        return None


def passes_compiled_check(data: object) -> bool:
    """True when the compiled validator accepts data (jsonschema would too); False when it objects, or
    when there is no compiled validator: jsonschema must look."""
    check = _compiled_validator()
    if check is None:
        return False
    try:
        check(data)
    except Exception:  # noqa: BLE001 - its objection (or a value it cannot handle): jsonschema decides
        return False
    return True


def _allowed_keys(schema: dict) -> list[str]:
    return sorted(schema.get("properties", {}))


def _describe_oneof_choices(schema: dict) -> list[str]:
    """The keys of a oneOf whose every branch is a one-key mapping named by its key (layers, preprocess
    steps); [] for any other oneOf."""
    branches = schema.get("oneOf", [])
    one_key = [b for b in branches if len(b.get("required", [])) == 1 and set(b.get("properties", {})) == set(b["required"])]
    return [b["required"][0] for b in one_key] if branches and len(one_key) == len(branches) else []


def _close_match(word: object, choices: list[str]) -> str | None:
    """The choice word is probably a typo of (long words are no typo and not worth comparing)."""
    if not isinstance(word, str) or len(word) > 100:
        return None
    hint = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return hint[0] if hint else None


def _backticked(word: str) -> str:
    return f"`{word}`" if len(word) <= QUOTE_CHARS else quote(word)


def _library_message(error) -> str:
    """jsonschema's own message, with a long value it quotes in full replaced by a short prefix."""
    message = error.message
    instance = error.instance
    if isinstance(instance, str | list | dict) and len(instance) > 8:
        full = repr(instance)
        if len(full) > QUOTE_CHARS + 2 and full in message:
            message = message.replace(full, quote(instance))
    return shorten(message)


def _messages(error, doc: LoadedYaml) -> list[SpecProblem]:
    path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        allowed = _allowed_keys(error.schema)
        problems = []
        for key in sorted(set(instance) - set(allowed)):
            hint = _close_match(key, allowed)
            suggestion = f"; did you mean `{hint}`?" if hint else f"; allowed keys: {', '.join(allowed)}"
            problems.append(doc.problem(path + (key,), f"unknown key {_backticked(key)}{suggestion}", at_key=True))
        return problems
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        # Point at the parent mapping: the missing key has no position of its own.
        line, col = doc.where(path)
        return [SpecProblem(doc.file, line, col, format_path(path + (missing,)), f"required key `{missing}` is missing")]
    if error.validator == "oneOf":
        return _oneof_messages(error, doc)
    if error.validator == "enum":
        allowed = ", ".join("null" if v is None else str(v) for v in error.validator_value)
        close = _close_match(instance, [str(v) for v in error.validator_value if v])
        hint = f"; did you mean `{close}`?" if close else ""
        return [doc.problem(path, f"{quote(instance)} is not allowed; allowed values: {allowed}{hint}")]
    if error.validator == "const":
        return [doc.problem(path, f"{quote(instance)} is not supported; expected {error.validator_value!r}")]
    if error.validator == "pattern" and isinstance(error.schema, dict) and error.schema.get("x-expected"):
        # A field that says what it expects in words, rather than its regular expression.
        return [doc.problem(path, f"{quote(instance)} is not {error.schema['x-expected']}")]
    return [doc.problem(path, _library_message(error))]


def _oneof_messages(error, doc: LoadedYaml) -> list[SpecProblem]:
    """Report the branch the author meant instead of 'is not valid under any of the given schemas'."""
    path = tuple(error.absolute_path)
    instance = error.instance
    choices = _describe_oneof_choices(error.schema)
    # Layers and preprocess steps: one-key mappings whose key names the branch.
    if choices and isinstance(instance, dict):
        if len(instance) != 1:
            return [doc.problem(path, f"expected exactly one of: {', '.join(choices)} (found {len(instance)} keys)")]
        (key,) = instance
        if key not in choices:
            hint = _close_match(key, choices)
            suggestion = f"did you mean `{hint}`? " if hint else ""
            return [doc.problem(path + (key,), f"unknown type {_backticked(key)}; {suggestion}allowed: {', '.join(choices)}", at_key=True)]
    by_branch: dict[int, list] = {}
    for sub in error.context or []:
        by_branch.setdefault(sub.schema_path[0], []).append(sub)
    # Branches that fail on their very type or required key are not what the author meant.
    plausible = {
        index: subs
        for index, subs in by_branch.items()
        if not any(s.validator in ("type", "required") and not s.relative_path for s in subs)
    }
    if not plausible:  # a mapping missing a required key still meant the mapping branch, if it is the only one
        plausible = {
            index: subs for index, subs in by_branch.items() if not any(s.validator == "type" and not s.relative_path for s in subs)
        }
    if len(plausible) == 1:
        problems: list[SpecProblem] = []
        for sub in next(iter(plausible.values())):
            problems.extend(_messages(sub, doc))
        return problems
    kinds = []
    for branch in error.schema.get("oneOf", []):
        kind = branch.get("type")
        kinds.extend(kind if isinstance(kind, list) else [kind] if kind else [])
    expected = f"expected one of: {', '.join(dict.fromkeys(kinds))}" if kinds else "does not match any allowed form"
    return [doc.problem(path, f"{quote(instance)} {expected}")]


def validate(doc: LoadedYaml) -> list[SpecProblem]:
    if passes_compiled_check(doc.data):
        return []
    problems: list[SpecProblem] = []
    for error in _validator().iter_errors(doc.data):
        problems.extend(_messages(error, doc))
    return sorted(set(problems))


def fill_defaults(data: dict, schema: dict | None = None) -> dict:
    """A copy of data with every schema default filled in (recursively, through object branches)."""
    schema = load_schema() if schema is None else schema
    return _fill(thaw(data), schema)


def fill_task_defaults(resolved: dict) -> dict:
    """Defaults that depend on model.task (the schema's own defaults are null for these)."""
    task = resolved["model"]["task"]
    if resolved["training"]["loss"] is None:
        resolved["training"]["loss"] = DEFAULT_LOSS[task]
    if resolved["evaluation"]["metrics"] is None:
        resolved["evaluation"]["metrics"] = list(DEFAULT_METRICS[task])
    champion = resolved["evaluation"]["champion"]
    if champion is not None and champion["metric"] is None:
        champion["metric"] = resolved["evaluation"]["metrics"][0]
    return resolved


def _fill(value, schema: dict):
    if isinstance(value, dict):
        object_schema = schema
        if "oneOf" in schema:
            object_schema = next((b for b in schema["oneOf"] if b.get("type") == "object"), {})
        for key, prop in object_schema.get("properties", {}).items():
            if key not in value and "default" in prop:
                value[key] = thaw(prop["default"])
            if key in value:
                value[key] = _fill(value[key], prop)
        extra = object_schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                if key not in object_schema.get("properties", {}):
                    value[key] = _fill(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict) and "oneOf" in schema["items"]:
        branches = {b["required"][0]: b for b in schema["items"]["oneOf"] if b.get("required")}
        for item in value:
            if isinstance(item, dict) and len(item) == 1:
                (key,) = item
                if key in branches:
                    _fill(item, branches[key])
    return value
