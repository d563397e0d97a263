"""Hypothesis strategies that feed the spec loader hostile input, and the counter the fuzz run reports.

Four families, each a strategy that yields `(data, labels)` where `data` is the str or bytes handed to
`load_spec_text` and `labels` names what was done to it (counted in the fuzz report):
- mutated example specs: specs/*.yaml parsed, structurally damaged, dumped back with yaml.safe_dump;
- spec-shaped YAML rendered by hand (anchors, aliases, merge keys, explicit tags, flow/block mixes);
- random YAML trees, deep nesting, random text and bytes;
- documents at the 1 MiB size limit and text transforms that must not change what a spec means.

Nothing here imports Airflow; the module is imported by tests/spec/conftest.py for FUZZ_STATS.
"""

from __future__ import annotations

import copy
import json
import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import yaml
from hypothesis import strategies as st
from tests.fixtures.paths import REPO
from tests.fixtures.paths import SPECS as SPECS_DIR

FUZZ_FILE = "fuzz.yaml"
MAX_SPEC_BYTES = (
    1024 * 1024
)  # mirrors mlspec.spec.yaml_loader.MAX_SPEC_BYTES; the size tests check the loader agrees

# ----------------------------------------------------------------------------------------------------
# The counter behind the fuzz report (printed by tests/spec/conftest.py, written to MLSPEC_FUZZ_REPORT).


@dataclass
class FuzzStats:
    """Every loader call a fuzz test makes, by strategy and outcome; shared by the tests and the conftest."""

    cases: Counter = field(default_factory=Counter)  # strategy -> loader calls
    outcomes: dict = field(
        default_factory=dict
    )  # strategy -> Counter(accepted | rejected | failure)
    labels: Counter = field(default_factory=Counter)  # mutation / transform names, over all strategies
    seconds: Counter = field(default_factory=Counter)  # strategy -> seconds inside the loader and the checks
    failures: int = 0  # property violations seen (hypothesis replays a failing case while shrinking it)
    first: float | None = None
    last: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, strategy: str, outcome: str, labels: tuple[str, ...] = (), seconds: float = 0.0) -> None:
        with self.lock:
            self.seconds[strategy] += seconds
            now = time.monotonic()
            self.first = now if self.first is None else self.first
            self.last = now
            self.cases[strategy] += 1
            self.outcomes.setdefault(strategy, Counter())[outcome] += 1
            self.labels.update(labels)
            if outcome == "failure":
                self.failures += 1

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def as_report(self) -> dict:
        return {
            "cases": self.total,
            "failures": self.failures,
            "wall_s": round((self.last or 0) - (self.first or 0), 2),
            "examples_setting": examples_budget(),
            "strategies": {
                name: {
                    "cases": self.cases[name],
                    "loader_ms_per_case": round(1000 * self.seconds[name] / self.cases[name], 2),
                    **dict(sorted(self.outcomes.get(name, Counter()).items())),
                }
                for name in sorted(self.cases)
            },
            "labels": dict(self.labels.most_common()),
        }


FUZZ_STATS = FuzzStats()


def examples_budget() -> int:
    """MLSPEC_FUZZ_EXAMPLES: the total number of generated cases the fuzz module aims for (default 300)."""
    raw = os.environ.get("MLSPEC_FUZZ_EXAMPLES", "300")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"MLSPEC_FUZZ_EXAMPLES must be an integer, not {raw!r}") from None
    return max(value, 10)


# ----------------------------------------------------------------------------------------------------
# What the schema and the example specs tell us.


def _schema() -> dict:
    return json.loads((REPO / "schemas" / "model-spec.schema.json").read_text())


SCHEMA = _schema()
LAYER_KINDS = [
    b["required"][0] for b in SCHEMA["properties"]["model"]["properties"]["layers"]["items"]["oneOf"]
]
PREPROCESS_KINDS = [
    b["required"][0] for b in SCHEMA["properties"]["data"]["properties"]["preprocess"]["items"]["oneOf"]
]


def _property_names(node, out: set) -> set:
    if isinstance(node, dict):
        out.update(k for k in node.get("properties", {}) if isinstance(k, str))
        for value in node.values():
            _property_names(value, out)
    elif isinstance(node, list):
        for value in node:
            _property_names(value, out)
    return out


SCHEMA_KEYS = sorted(_property_names(SCHEMA, set()))
EXAMPLE_TEXTS = {p.stem: p.read_text() for p in sorted(SPECS_DIR.glob("*.yaml"))}
EXAMPLE_DOCS = {name: yaml.safe_load(text) for name, text in EXAMPLE_TEXTS.items()}

CREDENTIAL_KEYS = [
    "password", "passwd", "db_password", "secret", "client_secret", "token", "auth_token", "api_key",
    "apiKey",
    "api-key", "access_key", "aws_access_key_id", "AWS_SECRET_ACCESS_KEY", "private_key", "Private-Key",
    "credentials", "Credential",
]  # fmt: skip
CREDENTIAL_VALUES = [
    "AKIAIOSFODNN7EXAMPLE", "ASIAABCDEFGHIJKLMNOP", "s3://AKIAIOSFODNN7EXAMPLE:wJalr@bucket/models",
    "s3://user:pw@bucket/x", "file://user:secret@host/models", "http://admin:admin@127.0.0.1:5000",
    "postgres://u:p@db/x", "hunter2", "key AKIAIOSFODNN7EXAMPLE inside",
]  # fmt: skip
DOTDOT_URIS = [
    "file://models/../../etc", "file://../models", "file://models/..", "s3://bucket/../other",
    "s3://bucket/a/../../b",
    "s3://bucket/%2e%2e/x", "file://./models/./../x", "builtin:../digits", "file://models/..%2f..",
    "s3://../x",
    "file:///abs/../root.npz", "file://models\\..\\x", "s3://bucket/...", "file://.../x.npz", "s3://b/x/..",
]  # fmt: skip
TRICKY_STRINGS = [
    "", " ", "..", "-", "~", "null", "None", "true", "yes", "NaN", ".inf", "<<", "=", "0x10", "1_000", "1:30",
    "2020-13-45", "2020-02-30", "@weekly", "@never", "@", "0 0 31 2 *", "*/0 * * * *", "* * * * * *",
    "0 3 * * 1",
    "x://[", "s3://[bucket/x", "file://[::1", "http://[::1]:99999/", "builtin:digits", "builtin:nope",
    "keras:mnist",
    "keras:", "file://data.npz", "file://data", "s3://bucket/data.csv", "file://x.parquet", "relu",
    "softmax", "dense",
    "\t", "\ufeff", "\u2028", "\x85", "\x00", "\x1b[31m", "é", "😀", "İ", "a" * 64, "a" * 300, "UPPER",
    "-lead",
    "trail-", "a..b", "line\nbreak", "'quote", '"dq', "#hash", "&anchor", "*alias", "!tag", "%", "@at",
    "`tick",
    "{brace}", "[bracket]", "key: value", "- item", "? q",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# JSON-ish values (what yaml.safe_dump can write back).

_NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(
        [0, -1, 1, 13, 21, 22, 63, 64, 65536, 65537, 10000, 10001, 86400, 86401, 2**31, 2**63, 2**64]
    ),
    st.integers(min_value=1, max_value=400).map(lambda e: 10**e),
    st.integers(min_value=1, max_value=400).map(lambda e: -(10**e)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [0.0, -0.0, 1e-300, 5e-324, 0.9, 0.8999999999999999, 1.0000000000000002, 1e308, float("nan")]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    _NUMBERS,
    st.text(max_size=20),
    st.sampled_from(TRICKY_STRINGS + CREDENTIAL_VALUES + DOTDOT_URIS),
    st.dates(),
    st.datetimes(),
    st.binary(max_size=8),
)
DICT_KEYS = st.one_of(
    st.sampled_from(SCHEMA_KEYS + LAYER_KINDS + PREPROCESS_KINDS),
    st.text(max_size=12),
    st.sampled_from(CREDENTIAL_KEYS + ["<<", "=", "<key>", "", " ", "~", "null", "true", "1", "1.5"]),
    st.integers(min_value=-5, max_value=5),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.dates(),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(DICT_KEYS, children, max_size=4),
    max_leaves=12,
)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# ----------------------------------------------------------------------------------------------------
# Structural mutations of a parsed spec. Each takes (draw, doc) and returns the new doc (the root may change).


def _paths(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, path + (index,))


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _set(doc, path, value):
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _pick(draw, doc, predicate=lambda path, value: True, *, root=False):
    choices = [(p, v) for p, v in _paths(doc) if (root or p) and predicate(p, v)]
    if not choices:
        return None
    return choices[draw(st.integers(min_value=0, max_value=len(choices) - 1))]


def _typo(draw, word: str) -> str:
    op = draw(
        st.sampled_from(["drop", "double", "swap", "upper", "space", "dash", "homoglyph", "plural", "prefix"])
    )
    if not word:
        return draw(st.sampled_from(["_", " ", "x"]))
    i = draw(st.integers(min_value=0, max_value=len(word) - 1))
    if op == "drop":
        return word[:i] + word[i + 1 :] or "_"
    if op == "double":
        return word[:i] + word[i] + word[i:]
    if op == "swap" and len(word) > 1:
        j = min(i + 1, len(word) - 1)
        chars = list(word)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if op == "upper":
        return word[:i] + word[i].swapcase() + word[i + 1 :]
    if op == "space":
        return draw(st.sampled_from([" " + word, word + " ", word.replace("_", " ")]))
    if op == "dash":
        return word.replace("_", "-") if "_" in word else word + "_"
    if op == "homoglyph":
        return (
            word.replace("a", "а").replace("e", "е").replace("o", "о")
            if any(c in word for c in "aeo")
            else word + "ı"
        )
    if op == "plural":
        return word[:-1] if word.endswith("s") else word + "s"
    return "x" + word


def m_delete_key(draw, doc):
    found = _pick(draw, doc, lambda p, v: isinstance(v, dict) and v, root=True)
    if found:
        path, value = found
        del value[draw(st.sampled_from(sorted(value, key=repr)))]
    return doc


def m_add_unknown_key(draw, doc):
    found = _pick(draw, doc, lambda p, v: isinstance(v, dict), root=True)
    if found:
        key = _typo(draw, draw(st.sampled_from(SCHEMA_KEYS))) if draw(st.booleans()) else draw(DICT_KEYS)
        found[1][key] = draw(JSON_VALUES)
    return doc


def m_replace_value(draw, doc):
    found = _pick(draw, doc, root=draw(st.integers(0, 20)) == 0)
    if found:
        doc = _set(doc, found[0], draw(JSON_VALUES))
    return doc


def m_retype_value(draw, doc):
    found = _pick(draw, doc)
    if found:
        path, old = found
        new = draw(JSON_VALUES)
        if _kind(new) == _kind(old):  # no filter (it would starve hypothesis): wrap instead
            new = [new] if not isinstance(new, list) else {"value": new}
        doc = _set(doc, path, new)
    return doc


def m_deep_nest(draw, doc):
    found = _pick(draw, doc, root=True)
    if found:
        path, value = found
        for _ in range(draw(st.integers(min_value=1, max_value=45))):
            value = (
                [value]
                if draw(st.booleans())
                else {draw(st.sampled_from(["a", "layers", "dense", "<<"])): value}
            )
        doc = _set(doc, path, value)
    return doc


def m_duplicate_items(draw, doc):
    found = _pick(draw, doc, lambda p, v: isinstance(v, list) and v)
    if found:
        path, items = found
        index = draw(st.integers(min_value=0, max_value=len(items) - 1))
        copies = draw(st.sampled_from([1, 2, 5, 50, 201]))
        items[index:index] = [copy.deepcopy(items[index]) for _ in range(copies)]
    return doc


def m_typo_key(draw, doc):
    found = _pick(
        draw, doc, lambda p, v: isinstance(v, dict) and any(isinstance(k, str) for k in v), root=True
    )
    if found:
        mapping = found[1]
        key = draw(st.sampled_from(sorted(k for k in mapping if isinstance(k, str))))
        items = [(_typo(draw, k) if k == key else k, v) for k, v in mapping.items()]
        mapping.clear()
        mapping.update(items)
    return doc


def _steps(doc):
    out = []
    for path, value in _paths(doc):
        if (
            isinstance(value, dict)
            and len(value) == 1
            and len(path) >= 2
            and path[-2] in ("layers", "preprocess")
        ):
            out.append((path, value))
    return out


def m_swap_layer_type(draw, doc):
    steps = _steps(doc)
    if not steps:
        return m_add_unknown_key(draw, doc)
    path, step = steps[draw(st.integers(min_value=0, max_value=len(steps) - 1))]
    ((kind, params),) = step.items()
    how = draw(st.sampled_from(["kind", "kind", "params", "two", "empty", "scalar", "other"]))
    if how == "kind":
        new_kind = draw(st.sampled_from(LAYER_KINDS + PREPROCESS_KINDS + [_typo(draw, kind)]))
        doc = _set(doc, path, {new_kind: params})
    elif how == "params":
        other = steps[draw(st.integers(min_value=0, max_value=len(steps) - 1))][1]
        doc = _set(doc, path, {kind: copy.deepcopy(next(iter(other.values())))})
    elif how == "two":
        step[draw(st.sampled_from(LAYER_KINDS + PREPROCESS_KINDS))] = {}
    elif how == "empty":
        doc = _set(doc, path, {})
    elif how == "scalar":
        doc = _set(doc, path, kind)
    else:
        doc = _set(doc, path, {kind: draw(JSON_VALUES)})
    return doc


_OUT_OF_RANGE = st.one_of(
    st.sampled_from(
        [-1, 0, -0.0, 1e-300, 0.9, 0.8999999, 1.0000001, 1.5, 2**31, 2**63, 2**64, 65537, 10001, 100001]
    ),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 5e-324, True, False]),
    st.integers(min_value=1, max_value=400).map(lambda e: 10**e),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
)


def m_out_of_range(draw, doc):
    found = _pick(draw, doc, lambda p, v: isinstance(v, int | float) and not isinstance(v, bool))
    if found:
        path, old = found
        new = draw(_OUT_OF_RANGE)
        if draw(st.integers(0, 3)) == 0:
            # The same number in the other type (3 -> 3.0, 3.0 -> 3), or negated.
            if isinstance(old, int) and abs(old) < 2**53:
                new = float(old)
            elif isinstance(old, float) and math.isfinite(old) and old == int(old):
                new = int(old)
            else:
                new = -old
        doc = _set(doc, path, new)
    return doc


def m_credentials(draw, doc):
    how = draw(st.sampled_from(["key", "value", "uri"]))
    if how == "key":
        found = _pick(draw, doc, lambda p, v: isinstance(v, dict), root=True)
        if found:
            found[1][draw(st.sampled_from(CREDENTIAL_KEYS))] = draw(
                st.sampled_from(CREDENTIAL_VALUES + ["x", ""])
            )
        return doc
    found = _pick(draw, doc, lambda p, v: isinstance(v, str) and bool(p))
    if found:
        value = draw(st.sampled_from(CREDENTIAL_VALUES))
        doc = _set(doc, found[0], value if how == "value" else found[1] + " " + value)
    return doc


def m_dotdot(draw, doc):
    if not isinstance(doc, dict):
        return doc
    target = draw(st.sampled_from([("storage", "uri"), ("data", "source"), None]))
    value = draw(st.one_of(st.sampled_from(DOTDOT_URIS), st.text(alphabet="./%2es3:bfile", max_size=12)))
    if target is None:
        found = _pick(draw, doc, lambda p, v: isinstance(v, str))
        return _set(doc, found[0], value) if found else doc
    section = doc.setdefault(target[0], {})
    if isinstance(section, dict):
        section[target[1]] = value
    return doc


# Schema-aware field settings: valid-looking values that drive the semantic checks (platform/runtime combos,
# thresholds without metrics, reshape ranks, split sums, replica counts, names) instead of only the schema.
_FIELDS = {
    ("metadata", "name"): st.one_of(
        st.sampled_from(["Digits", "-a", "a-", "a" * 63, "a" * 64, "a_b", "a.b", "x"]), st.text(max_size=8)
    ),
    ("schedule",): st.one_of(
        st.none(),
        st.sampled_from(["@daily", "@yearly", "@nope", "0 3 * * 1", "61 * * * *", "* * *", "0 0 31 2 *"]),
        st.fixed_dictionaries(
            {"assets": st.lists(st.sampled_from(["s3://b/x", "", "file://d"]), max_size=2)}
        ),
    ),
    ("data", "source"): st.sampled_from(
        [
            "builtin:digits",
            "builtin:iris",
            "keras:mnist",
            "keras:cifar10",
            "keras:fashion",
            "file://d.npz",
            "file://d",
            "file://d.csv",
            "s3://b/d.parquet",
            "http://x/d.npz",
            "d.npz",
        ]
    ),
    ("data", "format"): st.sampled_from(["npz", "csv", "parquet", None, "json"]),
    ("data", "features"): st.one_of(
        st.none(),
        st.sampled_from(["x", ""]),
        st.lists(st.sampled_from(["a", "b", "label", ""]), max_size=3),
        st.dictionaries(  # issue 13's column declarations, sound and contradictory
            st.sampled_from(["a", "b", "label"]),
            st.one_of(
                st.none(),
                st.sampled_from(["number", "integer", "boolean", "category", "text"]),
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["number", "integer", "boolean", "category"])},
                    optional={
                        "missing": st.one_of(
                            st.sampled_from(["error", "mean", "median", "most_frequent", "drop_row", "constant"]),
                            st.fixed_dictionaries({"constant": st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=3))}),
                        ),
                        "encode": st.sampled_from(["one_hot", "ordinal", "hash"]),
                        "max_categories": st.sampled_from([1, 2, 10, 2.5]),
                    },
                ),
            ),
            max_size=3,
        ),
    ),
    ("data", "exclude"): st.lists(st.sampled_from(["a", "b", "label", ""]), max_size=2),
    ("data", "split"): st.fixed_dictionaries(
        {"validation": st.sampled_from([0, 0.1, 0.5, 0.89]), "test": st.sampled_from([0.01, 0.2, 0.4, 0.89])}
    ),
    ("data", "preprocess"): st.lists(
        st.sampled_from(
            [
                {"scale": {"divide_by": 16.0}},
                {"reshape": [8, 8, 1]},
                {"reshape": [64]},
                {"reshape": [28, 28, 1]},
                {"normalize": {}},
                {"one_hot": {}},
                {"reshape": [2, 2, 2, 2]},
            ]
        ),
        max_size=4,
    ),
    ("model", "layers"): st.lists(
        st.sampled_from(
            [
                {"dense": {"units": 10}},
                {"dense": {"units": 3, "activation": "softmax"}},
                {"conv2d": {"filters": 4}},
                {"flatten": {}},
                {"global_average_pooling2d": {}},
                {"max_pooling2d": {"pool_size": 2}},
                {"dropout": {"rate": 0.5}},
                {"batch_normalization": {}},
            ]
        ),
        min_size=1,
        max_size=5,
    ),
    ("training", "loss"): st.sampled_from(
        ["sparse_categorical_crossentropy", "categorical_crossentropy", "mse"]
    ),
    ("training", "early_stopping"): st.one_of(
        st.none(), st.fixed_dictionaries({"monitor": st.sampled_from(["val_loss", "loss", "val_auc"])})
    ),
    ("evaluation", "metrics"): st.lists(
        st.sampled_from(["accuracy", "precision", "recall", "f1", "auc"]), min_size=0, max_size=4
    ),
    ("evaluation", "thresholds"): st.dictionaries(
        st.sampled_from(["accuracy", "f1", "recall", "auc"]),
        st.fixed_dictionaries(
            {},
            optional={
                "min": st.sampled_from([0, 0.5, 1, None, 1.5]),
                "max": st.sampled_from([0, 0.4, 1, None]),
            },
        ),
        max_size=3,
    ),
    ("storage", "uri"): st.sampled_from(
        ["file://models", "s3://bucket/prefix", "gs://b/x", "models", "s3://", "file://"]
    ),
    ("registry", "backend"): st.sampled_from(["mlflow", "kubeflow", "sagemaker"]),
    ("registry", "connection"): st.sampled_from([None, "", "model_registry", "bad conn"]),
    ("serving", "platform"): st.sampled_from(["local", "kserve", "docker"]),
    ("serving", "runtime"): st.sampled_from(["onnxruntime", "kserve-ovms", "kserve-tritonserver"]),
    ("serving", "auth"): st.sampled_from(["none", "token"]),
    ("serving", "deployment_mode"): st.sampled_from(["RawDeployment", "Serverless", "Knative"]),
    ("serving", "replicas"): st.fixed_dictionaries(
        {}, optional={"min": st.integers(0, 4), "max": st.integers(0, 4)}
    ),
    ("serving", "namespace"): st.sampled_from(["models", "Models", "", "a" * 64, "kube-system", "-x"]),
    ("serving", "resources"): st.fixed_dictionaries(
        {},
        optional={
            "cpu": st.sampled_from(["1", "500m", "0.5", "1.5m", "x"]),
            "memory": st.sampled_from(["1Gi", "512Mi", "1.5G", "1gb", ""]),
            "gpu": st.integers(-1, 17),
        },
    ),
}


def m_set_field(draw, doc):
    if not isinstance(doc, dict):
        return doc
    path = draw(st.sampled_from(sorted(_FIELDS)))
    parent = doc
    for part in path[:-1]:
        child = parent.setdefault(part, {}) if isinstance(parent, dict) else None
        if not isinstance(child, dict):
            return doc
        parent = child
    parent[path[-1]] = copy.deepcopy(draw(_FIELDS[path]))
    return doc


MUTATIONS = {
    "delete_key": m_delete_key,
    "add_unknown_key": m_add_unknown_key,
    "replace_value": m_replace_value,
    "retype_value": m_retype_value,
    "deep_nest": m_deep_nest,
    "duplicate_items": m_duplicate_items,
    "typo_key": m_typo_key,
    "swap_layer_type": m_swap_layer_type,
    "out_of_range": m_out_of_range,
    "credentials": m_credentials,
    "dotdot": m_dotdot,
    "set_field": m_set_field,
}


def _safe_dump(draw, doc) -> str:
    return yaml.safe_dump(
        doc,
        sort_keys=draw(st.booleans()),
        default_flow_style=draw(st.sampled_from([False, None, True])),
        allow_unicode=draw(st.booleans()),
        width=draw(st.sampled_from([80, 12, 10**6])),
    )


@st.composite
def mutated_specs(draw, max_mutations: int = 4):
    """An example spec with 0..max_mutations structural mutations, dumped back to YAML (str or bytes)."""
    name = draw(st.sampled_from(sorted(EXAMPLE_DOCS)))
    doc = copy.deepcopy(EXAMPLE_DOCS[name])
    labels = [f"spec:{name}"]
    for _ in range(draw(st.integers(min_value=0, max_value=max_mutations))):
        op = draw(st.sampled_from(sorted(MUTATIONS)))
        # A copy: values drawn from sampled_from are shared between cases, and a later mutation edits in place
        # (hypothesis then sees a strategy that draws differently for the same choices).
        doc = copy.deepcopy(MUTATIONS[op](draw, doc))
        labels.append(op)
    text = _safe_dump(draw, doc)
    if draw(st.integers(0, 4)) == 0:
        return text.encode("utf-8"), tuple(labels + ["as_bytes"])
    return text, tuple(labels)


# ----------------------------------------------------------------------------------------------------
# Hand-rendered YAML: what yaml.safe_dump never writes (anchors, aliases, merge keys, tags, odd scalars).

PLAIN_SCALARS = [
    "1", "-0", "0x1F", "0o17", "017", "0b101", "0b12", "1_000", "1:30", "190:20:30", "1.5e3", "1e400",
    "-1e400", ".5",
    "+.inf", "-.Inf", ".NaN", ".nan", "~", "null", "Null", "yes", "No", "on", "OFF", "true", "2020-01-01",
    "2020-13-45", "2020-02-30", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
    "2020-02-30 25:61:61",
    "1999-1-1", "<<", "=", "relu", "digits", "builtin:digits", "file://models", "s3://b/../x", "x://[",
    "@weekly",
    "mlspec/v1", "ModelSpec", "-", "a b", "é", "😀", "AKIAIOSFODNN7EXAMPLE", "1." + "0" * 40,
]  # fmt: skip
TAGS = [
    "!!python/object:os.system", "!!python/object/apply:os.system", "!!python/object/new:builtins.dict",
    "!!python/name:os.system", "!!python/module:os", "!!python/tuple", "!!python/str", "!!int", "!!float",
    "!!bool",
    "!!str", "!!null", "!!binary", "!!timestamp", "!!set", "!!omap", "!!pairs", "!!map", "!!seq", "!!merge",
    "!!value", "!foo", "!", "!<tag:yaml.org,2002:str>", "!<tag:yaml.org,2002:int>", "!<!bar>", "!e!x",
]  # fmt: skip


@dataclass
class YNode:
    """A YAML node to render: kind scalar | seq | map | alias; tag and anchor are optional decorations."""

    kind: str
    value: object = None  # scalar text (already YAML source), list of YNode, or list of (YNode, YNode)
    tag: str | None = None
    anchor: bool = False
    style: str = "flow"  # scalar: plain|single|double; collections: flow|block


def _quote_single(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_double(text: str) -> str:
    return json.dumps(
        text
    )  # JSON escapes (\uXXXX, including lone surrogates) are valid YAML double-quoted escapes


_SCALAR_NODES = st.one_of(
    st.sampled_from(PLAIN_SCALARS).map(lambda s: YNode("scalar", s, style="plain")),
    st.text(max_size=12).map(lambda s: YNode("scalar", _quote_single(s), style="single")),
    st.text(st.characters(exclude_categories=()), max_size=8).map(
        lambda s: YNode("scalar", _quote_double(s), style="double")
    ),
    st.integers(min_value=4200, max_value=4400).map(lambda n: YNode("scalar", "9" * n, style="plain")),
)
_KEY_NODES = st.one_of(
    st.sampled_from(
        SCHEMA_KEYS + LAYER_KINDS + ["<<", "<<", "=", "~", "null", "1", "2020-01-01", "2020-13-45", "? x"]
    ).map(lambda s: YNode("scalar", s if s != "? x" else _quote_single(s), style="plain")),
    _SCALAR_NODES,
)


def _decorate(node_strategy):
    return st.builds(
        lambda node, tag, anchor: YNode(node.kind, node.value, tag, anchor, node.style),
        node_strategy,
        st.one_of(st.none(), st.none(), st.none(), st.sampled_from(TAGS)),
        st.integers(0, 5).map(lambda n: n == 0),
    )


ALIAS_NODES = st.integers(min_value=0, max_value=50).map(lambda i: YNode("alias", i))


def _yaml_trees(max_leaves: int):
    return st.recursive(
        _decorate(_SCALAR_NODES) | ALIAS_NODES,
        lambda children: _decorate(
            st.builds(
                lambda items, block: YNode("seq", items, style="block" if block else "flow"),
                st.lists(children, max_size=4),
                st.booleans(),
            )
            | st.builds(
                lambda pairs, block: YNode("map", pairs, style="block" if block else "flow"),
                st.lists(st.tuples(_KEY_NODES | _decorate(children), children), max_size=4),
                st.booleans(),
            )
        ),
        max_leaves=max_leaves,
    )


class _Renderer:
    """Renders YNodes; anchors are numbered as they appear, aliases point at one seen before (or none)."""

    def __init__(self) -> None:
        self.anchors = 0

    def props(self, node: YNode) -> str:
        parts = []
        if node.anchor:
            parts.append(f"&a{self.anchors}")
            self.anchors += 1
        if node.tag:
            parts.append(node.tag)
        return " ".join(parts)

    def flow(self, node: YNode) -> str:
        if node.kind == "alias":
            return f"*a{node.value % self.anchors}" if self.anchors else "*missing"
        props = self.props(node)
        prefix = props + " " if props else ""
        if node.kind == "scalar":
            return prefix + str(node.value)
        if node.kind == "seq":
            return prefix + "[" + ", ".join(self.flow(item) for item in node.value) + "]"
        pairs = []
        for key, value in node.value:
            key_text = self.flow(key)
            if key.kind in ("seq", "map"):
                key_text = "? " + key_text
            pairs.append(f"{key_text}: {self.flow(value)}")
        return prefix + "{" + ", ".join(pairs) + "}"

    def block(self, node: YNode, indent: int) -> str:
        """Block style for collections marked so, flow below; returns text that follows `key:` or `-`."""
        if node.kind not in ("seq", "map") or node.style != "block" or not node.value:
            return " " + self.flow(node)
        pad = " " * indent
        props = self.props(node)
        lines = [(" " + props) if props else ""]
        for item in node.value if node.kind == "seq" else []:
            lines.append(f"{pad}-{self.block(item, indent + 2)}")
        for key, value in node.value if node.kind == "map" else []:
            key_text = self.flow(key)
            if key.kind in ("seq", "map"):
                key_text = "? " + key_text + "\n" + pad
            lines.append(f"{pad}{key_text}:{self.block(value, indent + 2)}")
        return "\n".join(lines)


def render(node: YNode) -> str:
    renderer = _Renderer()
    if node.kind in ("seq", "map") and node.style == "block" and node.value:
        return renderer.block(node, 0).lstrip(" ").lstrip("\n") + "\n"
    return renderer.flow(node) + "\n"


_PREFIXES = ["", "", "", "---\n", "--- ", "%YAML 1.1\n---\n", "%YAML 1.2\n---\n",
             "%TAG !e! tag:example.com,2000:\n---\n",
             "# comment\n", "\ufeff", "...\n", "%FOO bar\n---\n"]  # fmt: skip
_SUFFIXES = ["", "", "", "...\n", "---\n", "--- x\n", "# end", "\n\n", "\t\n"]


@st.composite
def random_yaml(draw, max_leaves: int = 24):
    """A random YAML document with anchors, aliases, merge keys and tags, under random directives/markers."""
    tree = draw(_yaml_trees(max_leaves))
    block_root = tree.kind in ("seq", "map") and tree.style == "block" and bool(tree.value)
    prefix = draw(st.sampled_from([p for p in _PREFIXES if not (block_root and p == "--- ")]))
    text = prefix + render(tree) + draw(st.sampled_from(_SUFFIXES))
    return text, (f"root:{tree.kind}/{tree.style}",)


def _to_ynode(draw, value, rate: int) -> YNode:
    """A YNode for plain data, random styles and quoting; one node in `rate` gets a tag, anchor or alias."""
    block = draw(st.booleans())
    if isinstance(value, dict):
        pairs = [
            (
                YNode("scalar", _quote_single(str(k)) if draw(st.booleans()) else str(k), style="plain"),
                _to_ynode(draw, v, rate),
            )
            for k, v in value.items()
        ]
        node = YNode("map", pairs, style="block" if block else "flow")
    elif isinstance(value, list):
        node = YNode("seq", [_to_ynode(draw, v, rate) for v in value], style="block" if block else "flow")
    elif value is None:
        node = YNode("scalar", draw(st.sampled_from(["null", "~", "Null"])), style="plain")
    elif isinstance(value, bool):
        node = YNode(
            "scalar",
            draw(st.sampled_from(["true", "yes", "on"] if value else ["false", "no", "off"])),
            style="plain",
        )
    elif isinstance(value, int | float):
        node = YNode("scalar", repr(value), style="plain")
    else:
        node = YNode(
            "scalar",
            _quote_single(str(value)) if draw(st.booleans()) else _quote_double(str(value)),
            style="single",
        )
    roll = draw(st.integers(min_value=0, max_value=rate)) if rate else -1
    if roll == 0:
        node.tag = draw(st.sampled_from(TAGS))
    elif roll in (1, 2):
        node.anchor = True
    elif roll == 3:
        return YNode("alias", draw(st.integers(0, 50)))
    return node


@st.composite
def spec_shaped_yaml(draw):
    """An example spec (sometimes mutated) re-rendered by hand: same data, many spellings, some decorated."""
    name = draw(st.sampled_from(sorted(EXAMPLE_DOCS)))
    doc = copy.deepcopy(EXAMPLE_DOCS[name])
    labels = [f"spec:{name}"]
    if draw(st.integers(0, 2)) == 0:
        op = draw(st.sampled_from(sorted(MUTATIONS)))
        doc = copy.deepcopy(MUTATIONS[op](draw, doc))
        labels.append(op)
    rate = draw(
        st.sampled_from([0, 0, 0, 300, 100, 30])
    )  # 0: plain rendering, else 1 node in `rate` decorated
    labels.append(f"decorate:1/{rate}" if rate else "plain")
    root = _to_ynode(draw, doc, rate)
    if root.kind == "map" and draw(st.integers(0, 3)) == 0:
        # A merge key in the root: `<<: *aN`, `<<: {...}` or a scalar (overrides, merged-in duplicates).
        value = draw(
            _decorate(_SCALAR_NODES)
            | ALIAS_NODES
            | st.just(YNode("map", [(YNode("scalar", "metadata", style="plain"), YNode("map", []))]))
        )
        root.value.insert(
            draw(st.integers(0, len(root.value))), (YNode("scalar", "<<", style="plain"), value)
        )
        labels.append("merge_key")
    block_root = root.kind in ("seq", "map") and root.style == "block" and bool(root.value)
    # Prefixes that keep a valid document valid (random_yaml tries the broken ones).
    valid = ["", "", "", "---\n", "%YAML 1.1\n---\n", "# comment\n", "\ufeff"] + (
        [] if block_root else ["--- "]
    )
    return draw(st.sampled_from(valid)) + render(root), tuple(labels)


@st.composite
def deeply_nested(draw):
    """Nesting from a few levels to far past the loader's limit and Python's recursion limit."""
    depth = draw(
        st.one_of(
            st.integers(1, 40),
            st.integers(25, 40),
            st.integers(40, 300),
            st.sampled_from([999, 1000, 1001, 3000]),
        )
    )
    style = draw(st.sampled_from(["flow_seq", "flow_map", "block_map", "block_seq", "mixed", "alias_chain"]))
    leaf = draw(st.sampled_from(["1", "x", "{}", "[]", "null"]))
    if style == "flow_seq":
        body = "[" * depth + leaf + "]" * depth
    elif style == "flow_map":
        body = "{a: " * depth + leaf + "}" * depth
    elif style == "block_map":
        depth = min(depth, 400)  # indentation grows quadratically in size
        body = "\n" + "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + leaf
    elif style == "block_seq":
        body = "- " * depth + leaf
    elif style == "mixed":
        body = (
            "".join("[{a: " if i % 2 else "{b: [" for i in range(depth))
            + leaf
            + "".join("}]" if i % 2 else "]}" for i in reversed(range(depth)))
        )
    else:
        depth = min(depth, 60)
        body = "&n0 " + leaf + "\n" + "".join(f"k{i}: &n{i} [*n{i - 1}]\n" for i in range(1, depth))
        return "k0: " + body, ("alias_chain", f"depth:{depth // 10 * 10}")
    where = draw(st.sampled_from(["top", "metadata", "layers"]))
    if where == "top":
        text = body if style != "block_map" else body.lstrip("\n")
    elif where == "metadata":
        text = EXAMPLE_TEXTS["iris"] + "x_nested: " + body + "\n"
    else:
        text = EXAMPLE_TEXTS["iris"].replace(
            "    - dense: {units: 16",
            "    - dense: " + body.replace("\n", " ") + "\n    - dense: {units: 16",
            1,
        )
    return text, (style, where, f"depth:{min(depth, 1000) // 100 * 100}")


@st.composite
def random_text(draw):
    """Unicode text: any code point (surrogates too, rarely), YAML punctuation, a spec with junk in it."""
    kind = draw(st.sampled_from(["any", "any", "yamlish", "yamlish", "yamlish", "splice", "surrogates"]))
    if kind == "any":
        text = draw(st.text(max_size=200))
    elif kind == "yamlish":
        text = draw(
            st.text(
                alphabet=st.sampled_from(list(":-[]{}&*!|>'\"%@`#,?.~<= \n\tabcxyz019\u2028\u0085é")),
                max_size=200,
            )
        )
    elif kind == "splice":
        base = EXAMPLE_TEXTS[draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))]
        at = draw(st.integers(0, len(base)))
        cut = draw(st.integers(0, 30))
        text = base[:at] + draw(st.text(max_size=20)) + base[at + cut :]
    else:
        text = draw(st.text(st.characters(exclude_categories=()), max_size=50))
    return text, (f"text:{kind}",)


@st.composite
def random_bytes(draw):
    """Bytes: random, a spec in another encoding, or a spec with bytes spliced in."""
    kind = draw(st.sampled_from(["random", "random", "utf16", "utf8_bom", "latin1", "splice"]))
    base = EXAMPLE_TEXTS[draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))]
    if kind == "random":
        data = draw(st.binary(max_size=300))
    elif kind == "utf16":
        data = base.encode(draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32"])))
    elif kind == "utf8_bom":
        data = b"\xef\xbb\xbf" + base.encode()
    elif kind == "latin1":
        data = base.replace("classifier", "classifié").encode("latin-1")
    else:
        raw = base.encode()
        at = draw(st.integers(0, len(raw)))
        data = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return data, (f"bytes:{kind}",)


# ----------------------------------------------------------------------------------------------------
# Texts that must mean exactly what the example spec means, and documents at the size limit.


TRANSFORMS = {
    "crlf": lambda t: t.replace("\n", "\r\n"),
    "bom_str": lambda t: "\ufeff" + t,
    "bom_bytes": lambda t: b"\xef\xbb\xbf" + t.encode(),
    "utf8_bytes": lambda t: t.encode(),
    "doc_start": lambda t: "---\n" + t,
    "doc_end": lambda t: t + ("" if t.endswith("\n") else "\n") + "...\n",
    "yaml_directive": lambda t: "%YAML 1.1\n---\n" + t,
    "trailing_spaces": lambda t: "\n".join(line + "   " for line in t.split("\n")),
    "trailing_comments": lambda t: "\n".join(
        line + "  # note" if line.strip() and not line.lstrip().startswith("#") and '"' not in line else line
        for line in t.split("\n")
    ),
    "no_final_newline": lambda t: t.rstrip("\n"),
    "blank_lines": lambda t: t.replace("\n", "\n\n"),
    "comment_block": lambda t: "# " + "é😀\t" * 50 + "\n" + t,
    "tabs_in_comments": lambda t: t.replace("# ", "#\t"),
    "safe_dump_block": lambda t: yaml.safe_dump(yaml.safe_load(t), sort_keys=False, width=10**6),
    "safe_dump_flow": lambda t: yaml.safe_dump(yaml.safe_load(t), default_flow_style=True, width=10**6),
    "json": lambda t: json.dumps(yaml.safe_load(t)),
    "json_indented": lambda t: json.dumps(yaml.safe_load(t), indent=2, ensure_ascii=False),
}


REDUMPS = ("safe_dump_block", "safe_dump_flow", "json", "json_indented")


@st.composite
def equivalent_texts(draw):
    """(example name, transformed text): YAML that must load to the very same spec as the example."""
    name = draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))
    ops = draw(
        st.lists(
            st.sampled_from(sorted(k for k in TRANSFORMS if k not in ("bom_bytes", "utf8_bytes"))),
            max_size=3,
            unique=True,
        )
    )
    if "doc_start" in ops and "yaml_directive" in ops:  # one document: a single `---`
        ops.remove("doc_start")
    # Re-dumps first (one at most, unwrapped): a line-based transform after a wrapped scalar changes it.
    redumps = [op for op in ops if op in REDUMPS][:1]
    ops = redumps + [op for op in ops if op not in REDUMPS]
    if "bom_str" in ops:  # a BOM means something only as the very first character
        ops = [op for op in ops if op != "bom_str"] + ["bom_str"]
    text = EXAMPLE_TEXTS[name]
    for op in ops:
        text = TRANSFORMS[op](text)
    last = draw(st.sampled_from([None, "bom_bytes", "utf8_bytes"]))
    if last == "bom_bytes" and "bom_str" in ops:
        last = "utf8_bytes"  # one BOM; a second one is content (a key named "\ufeff# ...")
    if last:
        text = TRANSFORMS[last](text)
        ops.append(last)
    return name, text, tuple(ops)


@st.composite
def near_size_limit(draw):
    """(data, byte size, labels): an example spec padded by a comment to a few bytes of 1 MiB (or past it)."""
    name = draw(st.sampled_from(sorted(EXAMPLE_TEXTS)))
    base = EXAMPLE_TEXTS[name]
    delta = draw(st.one_of(st.integers(-8, 8), st.sampled_from([-4096, 4096, MAX_SPEC_BYTES])))
    target = MAX_SPEC_BYTES + delta
    unit = draw(st.sampled_from(["x", "é", "😀", "€"]))  # 1, 2, 4, 3 bytes in UTF-8: the limit counts bytes
    prefix = "# "
    room = target - len(base.encode()) - len(prefix.encode()) - 1
    pad = unit * (room // len(unit.encode()))
    pad += "x" * (room - len(pad.encode()))
    text = base + prefix + pad + "\n"
    as_bytes = draw(st.booleans())
    data = text.encode() if as_bytes else text
    return data, len(text.encode()), (f"pad:{unit}", "bytes" if as_bytes else "str")


def merge_bomb(levels: int, fan: int = 9) -> str:
    """A few hundred bytes whose merge keys expand to fan**levels mapping entries before a node is counted."""
    node = "&l0 {k: 1}"
    for i in range(1, levels + 1):
        node = f"&l{i} {{<<: [{node}{''.join(f', *l{i - 1}' for _ in range(fan - 1))}]}}"
    return "top: " + node + "\n"


# ----------------------------------------------------------------------------------------------------
# Issue 9 shapes: aliases that fan out, long scalars, odd URIs, control characters in names.

MAX_EXPANDED_BYTES = 2 * MAX_SPEC_BYTES  # mirrors mlspec.spec.yaml_loader.MAX_EXPANDED_BYTES
MAX_NODES = 20_000  # mirrors mlspec.spec.yaml_loader.MAX_NODES
CONTROL_CHARACTERS = ["\n", "\r", "\t", "\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\r\n"]
_LONG_SIZES = st.sampled_from([100, 1_000, 10_000, 50_000, 200_000, 500_000, 900_000, 1_000_000])
_SPEC_NAMES = sorted(EXAMPLE_TEXTS)
_FAST_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: megabyte values in milliseconds


def _flow_item(text: str) -> str:
    """A YAML flow scalar for text (JSON double quotes: every character is written as an escape if need be)."""
    return json.dumps(text)


@st.composite
def alias_fan_out(draw):
    """A valid example spec plus one anchored value referenced many times through aliases: a long string, a
    list or a mapping, under an unknown key, in the tags, in a layer, in a merge key or nested in lists."""
    name = draw(st.sampled_from(_SPEC_NAMES))
    base = EXAMPLE_TEXTS[name]
    size = draw(st.sampled_from([10, 1_000, 5_000, 50_000, 100_000, 500_000, 900_000]))
    # References that keep the document under 1 MiB: each `, *a` is 4 bytes.
    room = max(0, (MAX_SPEC_BYTES - len(base.encode()) - size - 200) // 4)
    where = draw(st.sampled_from(["unknown_key", "tags", "sibling", "layers", "nested_lists", "merge"]))
    if where == "nested_lists":  # the references are written twice
        room //= 2
    refs = draw(st.one_of(st.integers(0, 20), st.integers(0, min(room, 20_000)), st.just(min(room, 19_000))))
    shape = draw(st.sampled_from(["string", "list", "map", "nested"]))
    if shape == "string":
        anchored = "&a " + "a" * size
    elif shape == "list":
        anchored = "&a [" + ", ".join(["b" * 50] * max(1, size // 52)) + "]"
    elif shape == "map":
        anchored = "&a {" + ", ".join(f"k{i}: {'v' * 40}" for i in range(max(1, size // 48))) + "}"
    else:
        anchored = "&a [[[" + "c" * size + "]]]"
    aliases = ", *a" * refs
    if where == "unknown_key":
        text = base + f"x_unknown: [{anchored}{aliases}]\n"
    elif where == "tags":
        text = base.replace("metadata:\n", f"metadata:\n  tags: [{anchored}{aliases}]\n", 1)
    elif where == "sibling":
        text = base + f"x_anchor: {anchored}\nx_more: [{aliases.lstrip(', ')}]\n" if refs else base + f"x_anchor: {anchored}\n"
    elif where == "layers":
        text = base + f"x_anchor: {anchored}\nx_layers: [{'[' * 3}{aliases.lstrip(', ') or '1'}{']' * 3}]\n"
    elif where == "nested_lists":
        text = base + f"x: [{anchored}, [{aliases.lstrip(', ') or '1'}], [[{aliases.lstrip(', ') or '1'}]]]\n"
    else:
        text = base + f"x_base: &m {{k: {anchored}}}\nx_merged: [{', '.join(['{<<: *m}'] * min(refs, 5000)) or '{}'}]\n"
    expanded = size * (refs + 1)
    bucket = "over" if expanded > MAX_EXPANDED_BYTES else "under"
    return text, (f"spec:{name}", f"fan_out:{shape}", f"at:{where}", f"expanded:{bucket}"), expanded


LONG_SCALAR_FIELDS = [
    ("metadata", "name"), ("metadata", "description"), ("metadata", "owner"), ("data", "source"),
    ("data", "label"), ("storage", "uri"), ("storage", "connection"), ("registry", "backend"),
    ("serving", "namespace"), ("serving", "url"), ("serving", "resources", "cpu"), ("schedule",),
    ("training", "optimizer", "name"), ("x_unknown",),
]  # fmt: skip


@st.composite
def long_scalars(draw):
    """An example spec with one field (or one key) set to a very long string: messages must quote a prefix."""
    name = draw(st.sampled_from(_SPEC_NAMES))
    doc = copy.deepcopy(EXAMPLE_DOCS[name])
    size = draw(_LONG_SIZES)
    unit = draw(st.sampled_from(["x", "é", "9", "a-", "s3://b/", "../", "\u2028", "😀"]))
    value = (unit * (size // len(unit) + 1))[:size]
    as_key = draw(st.integers(0, 4)) == 0
    path = draw(st.sampled_from(LONG_SCALAR_FIELDS))
    parent = doc
    for part in path[:-1]:
        parent = parent.setdefault(part, {}) if isinstance(parent.get(part, {}), dict) else {}
    if as_key:
        parent[value[:200_000]] = 1
    else:
        parent[path[-1]] = value
    text = yaml.dump(doc, Dumper=_FAST_DUMPER, allow_unicode=draw(st.booleans()), width=10**7)
    return text, (f"spec:{name}", f"long:{'.'.join(path)}", f"as_key:{as_key}", f"size:{size}")


ODD_URIS = [
    "file://..", "file://../outside.csv", "file://.", "file://", "file:///", "file:///dev/zero", "file:///etc/..",
    "file://models/../x", "file://models/..", "file://models/%2e%2e/x", "file://models\\..\\x", "file:models",
    "file:/models", "file://models\n", "file://mod\x00els", "file://models\t", "file://models\u2028x",
    "s3://", "s3:///key.csv", "s3://bucket", "s3://bucket/", "s3://../x", "s3://bucket/..", "s3://bucket/a/../b",
    "s3://Bucket/x", "s3://bu_cket/x", "s3://ab/x", "s3://" + "b" * 64 + "/x", "s3://bucket..dots/x",
    "s3://-bucket/x", "s3://bucket-/x", "s3://bucket\n/x.csv", "s3://bucket/x.csv\n", "s3://bucket/x\r\n",
    "s3:bucket/x", "s3:/bucket/x", "S3://bucket/x", "s3://bucket/x y.csv", "s3://bücket/x", "s3://bucket/ü.csv",
    "s3://bucket/%0a.csv", "s3://user@bucket/x", "s3://bucket:9000/x", "s3://bucket/x?versionId=1",
    "s3://bucket/x#frag", "s3://[bucket/x", "builtin:../digits", "builtin:digits\n", "keras:mnist\x00",
    "http://example.com/x.csv", "ftp://x/y", "//bucket/x", "models", "",
]  # fmt: skip


@st.composite
def odd_uris(draw):
    """storage.uri and data.source set to URIs with '..' in some part, control characters, no bucket, ..."""
    name = draw(st.sampled_from(_SPEC_NAMES))
    doc = copy.deepcopy(EXAMPLE_DOCS[name])
    target = draw(st.sampled_from([("storage", "uri"), ("data", "source")]))
    uri = draw(
        st.one_of(
            st.sampled_from(ODD_URIS),
            st.builds(
                lambda scheme, parts, sep: scheme + sep.join(parts),
                st.sampled_from(["file://", "s3://", "file:///"]),
                st.lists(st.sampled_from(["models", "..", ".", "", "b", "x.csv", "a\nb", "%2e%2e", "..."]), max_size=5),
                st.sampled_from(["/", "\\", "//"]),
            ),
            st.builds(
                lambda uri, control, at: uri[:at] + control + uri[at:],
                st.sampled_from(["file://models", "s3://models/mlspec", "file://data/x.csv", "s3://data/x.csv"]),
                st.sampled_from(CONTROL_CHARACTERS),
                st.integers(0, 18),
            ),
        )
    )
    section = doc.setdefault(target[0], {})
    section[target[1]] = uri
    if target == ("data", "source") and draw(st.booleans()):
        section["format"] = "csv"
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), width=10**6)
    return text, (f"spec:{name}", f"uri:{'.'.join(target)}"), target, uri


@st.composite
def odd_names(draw):
    """metadata.name (and serving.namespace) with control characters, trailing newlines, lookalikes, edges."""
    name = draw(st.sampled_from(_SPEC_NAMES))
    doc = copy.deepcopy(EXAMPLE_DOCS[name])
    base = doc["metadata"]["name"]
    how = draw(st.sampled_from(["append", "prepend", "insert", "only", "lookalike", "edge"]))
    control = draw(st.sampled_from(CONTROL_CHARACTERS + [" ", "\ufeff", "\u200b", "\xa0"]))
    if how == "append":
        value = base + control
    elif how == "prepend":
        value = control + base
    elif how == "insert":
        at = draw(st.integers(0, len(base)))
        value = base[:at] + control + base[at:]
    elif how == "only":
        value = control * draw(st.integers(1, 3))
    elif how == "lookalike":
        value = base.replace("i", "і").replace("a", "а").replace("o", "о") + draw(st.sampled_from(["", "ı"]))
    else:
        value = draw(st.sampled_from(["a" * 63, "a" * 64, "a", "0", "a-" * 31 + "a", "-a", "a-", "a--b", "A"]))
    field_path = draw(st.sampled_from([("metadata", "name"), ("serving", "namespace")]))
    doc.setdefault(field_path[0], {})[field_path[1]] = value
    style = draw(st.sampled_from(["safe_dump", "double_quoted", "block_literal"]))
    if style == "safe_dump":
        text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), width=10**6)
    else:
        doc.setdefault(field_path[0], {})[field_path[1]] = "__NAME__"
        text = yaml.safe_dump(doc, allow_unicode=True, width=10**6)
        rendered = _flow_item(value) if style == "double_quoted" else "|-\n    " + value.replace("\n", "\n    ")
        if style == "block_literal" and (not value or value != value.strip() or any(c in value for c in "\r\x85\u2028\u2029\x00\x1b\x7f\ufeff")):
            rendered = _flow_item(value)  # a literal block cannot carry these
        text = text.replace("__NAME__", rendered, 1)
    return text, (f"spec:{name}", f"name:{how}", f"field:{'.'.join(field_path)}", f"style:{style}"), field_path, value
