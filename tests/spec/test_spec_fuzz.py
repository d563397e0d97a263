"""Property-based fuzzing of the spec loader: whatever goes in, a ModelSpec or a located SpecError comes out.

The property (checked by `check_loader` for every generated case):
- `load_spec_text(data, "fuzz.yaml")` either returns a ModelSpec, whose `to_dict()` round-trips through
  JSON and `ModelSpec.from_dict` (equal spec, equal hash) and loads again from its own YAML dump to the
  same hash;
- or raises SpecError whose every problem has file "fuzz.yaml", line >= 1, column >= 1 inside the document,
  a non-empty message, and prints as "fuzz.yaml:<line>:<col>: ...";
- any other exception is a failure;
- every problem line stays short (a message quotes at most a prefix of a long value).

The issue-9 strategies add their own properties: aliases that fan out are refused within the expansion
limit and quickly; accepted URIs carry no control character, no `..` in any part and a valid bucket; accepted
names are whole DNS-1123 labels.

MLSPEC_FUZZ_EXAMPLES sets the total number of generated cases for the module (default 300, well under a
minute); `make fuzz` runs >= 10,000. tests/spec/conftest.py prints the count and, with MLSPEC_FUZZ_REPORT,
writes it as JSON.

Bugs this fuzzer found in the loader are fixed; their minimal reproducers stay below as regression tests
(FOUND_BUGS). Inputs that could take the test process down if the loader regressed (merge-key bomb, very deep
nesting that would overflow libyaml's C stack) run in subprocesses and are never generated in-process.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from tests.spec.fuzz_strategies import (
    EXAMPLE_TEXTS,
    FUZZ_FILE,
    FUZZ_STATS,
    MAX_EXPANDED_BYTES,
    MAX_NODES,
    MAX_SPEC_BYTES,
    alias_fan_out,
    deeply_nested,
    equivalent_texts,
    examples_budget,
    long_scalars,
    merge_bomb,
    mutated_specs,
    near_size_limit,
    odd_names,
    odd_uris,
    random_bytes,
    random_text,
    random_yaml,
    spec_shaped_yaml,
)

import mlspec.spec as spec_api
from mlspec.spec import ModelSpec, SpecError, SpecProblem

# ----------------------------------------------------------------------------------------------------
# Bugs this fuzzer found in the loader (all fixed): each reproducer must now give a located SpecError.

_VALID_IRIS = EXAMPLE_TEXTS["iris"]
FOUND_BUGS = {
    # PyYAML constructors raise plain ValueError/KeyError/AttributeError/IndexError for these.
    "yaml-constructor-errors": (
        "metadata: {description: 2020-13-45}\n",
        "a: 2020-02-30\n",
        "a: !!int x\n",
        "a: !!float x\n",
        "a: !!bool x\n",
        "a: !!timestamp x\n",
        "!!timestamp x: 1\n",
        "a: " + "9" * 4301 + "\n",
        "a: !!int ''\n",
        "a: !!float ''\n",
    ),
    # Non-printable characters: the pure-Python reader raised ReaderError outside the loader's try.
    "reader-error-escapes": ("a: \x01\n", b"a: \x7f\n", "metadata: {name: \ufffe}\n"),
    # A lone surrogate in a str made text.encode() raise UnicodeEncodeError.
    "surrogates-escape": ("a: \ud800\n",),
    # urlparse raises ValueError('Invalid IPv6 URL') for an unbalanced '['.
    "urlparse-valueerror": ("a: 'x://['\n", _VALID_IRIS.replace("evaluation:", "storage: {uri: '//[x'}\nevaluation:")),
    # NaN passes every JSON Schema bound (all comparisons with NaN are false).
    "nan-accepted": (
        _VALID_IRIS.replace("learning_rate: 0.02", "learning_rate: .nan"),
        _VALID_IRIS.replace("validation: 0.15", "validation: .nan"),
        _VALID_IRIS.replace("accuracy: {min: 0.85}", "accuracy: {min: .nan}"),
    ),
}


# ----------------------------------------------------------------------------------------------------
# The property.

MAX_PROBLEM_CHARS = 2000  # one problem line; long values are quoted by a short prefix
_YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what PyYAML's reader counts as a new line


def _document_lines(data: str | bytes) -> list[str] | None:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return _YAML_LINE_BREAK.split(data)


def assert_located(err: SpecError, data: str | bytes) -> None:
    """Every problem names fuzz.yaml and a line:column inside the document, and a message to act on."""
    assert err.problems, "SpecError without problems"
    assert str(err) == "\n".join(str(p) for p in err.problems)
    assert err.file == FUZZ_FILE
    lines = _document_lines(data)
    assert any(p.severity == "error" for p in err.problems), err.problems
    for p in err.problems:
        assert isinstance(p, SpecProblem), p
        assert p.file == FUZZ_FILE, p
        assert type(p.line) is int and type(p.column) is int, p
        assert p.line >= 1 and p.column >= 1, f"problem without a location: {p!r}"
        assert isinstance(p.message, str) and p.message.strip(), f"empty message: {p!r}"
        assert "Traceback (most recent call last)" not in p.message, p
        assert str(p).startswith(f"{FUZZ_FILE}:{p.line}:{p.column}: "), str(p)
        assert len(str(p)) < MAX_PROBLEM_CHARS, f"a {len(str(p))}-character problem: {str(p)[:300]}..."
        if lines is None:  # undecodable bytes: only the document itself can be blamed
            assert (p.line, p.column) == (1, 1), p
        else:
            # libyaml reports "unexpected end of stream" just past the last line: (len(lines) + 1, 1).
            end_of_stream = (p.line, p.column) == (len(lines) + 1, 1)
            assert p.line <= len(lines) or end_of_stream, (
                f"line {p.line} is past the end of the document: {p}"
            )
            assert end_of_stream or p.column <= len(lines[p.line - 1]) + 1, f"column past the line's end: {p}"


def assert_round_trips(spec: ModelSpec) -> None:
    """An accepted spec survives JSON (XCom) and its own YAML dump unchanged."""
    assert isinstance(spec, ModelSpec)
    assert spec.source_file == FUZZ_FILE
    resolved = spec.to_dict()
    back = ModelSpec.from_dict(json.loads(json.dumps(resolved)), source_file=FUZZ_FILE)
    assert back == spec, "ModelSpec.from_dict(json(to_dict())) differs from the loaded spec"
    assert back.spec_hash == spec.spec_hash
    again = spec_api.load_spec_text(yaml.safe_dump(resolved), FUZZ_FILE)
    assert again.spec_hash == spec.spec_hash, (
        "the resolved spec, dumped and loaded again, means something else"
    )


@dataclass
class Outcome:
    kind: str  # accepted | rejected
    spec: ModelSpec | None = None
    error: SpecError | None = None


def check_loader(data: str | bytes, strategy: str, labels: tuple = (), *, record: bool = True) -> Outcome:
    """Run the loader on one input and assert the property; counted in FUZZ_STATS under `strategy`."""
    kind = "failure"
    started = time.perf_counter()
    try:
        try:
            spec = spec_api.load_spec_text(data, FUZZ_FILE)
        except SpecError as err:
            assert_located(err, data)
            kind = "rejected"
            return Outcome(kind, error=err)
        except Exception as exc:  # noqa: BLE001 - anything but SpecError is the failure we look for
            raise AssertionError(f"load_spec_text raised {type(exc).__name__}, not SpecError: {exc}") from exc
        assert_round_trips(spec)
        kind = "accepted"
        return Outcome(kind, spec=spec)
    finally:
        if record:
            FUZZ_STATS.record(strategy, kind, tuple(labels), time.perf_counter() - started)


# ----------------------------------------------------------------------------------------------------
# The fuzz tests: shares of MLSPEC_FUZZ_EXAMPLES.

BUDGET = examples_budget()


def fuzz(share: float, minimum: int = 5, maximum: int | None = None):
    count = max(minimum, round(BUDGET * share))
    return settings(
        max_examples=min(count, maximum) if maximum else count,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


@fuzz(0.40)
@given(mutated_specs())
def test_mutated_example_specs_load_or_fail_with_located_errors(case):
    data, labels = case
    check_loader(data, "mutated_specs", labels)


@fuzz(0.15)
@given(spec_shaped_yaml())
def test_hand_rendered_specs_with_anchors_tags_and_merges(case):
    data, labels = case
    check_loader(data, "spec_shaped_yaml", labels)


@fuzz(0.18)
@given(random_yaml())
def test_random_yaml_documents(case):
    data, labels = case
    check_loader(data, "random_yaml", labels)


@fuzz(0.10)
@given(random_text())
def test_random_text(case):
    data, labels = case
    check_loader(data, "random_text", labels)


@fuzz(0.06)
@given(random_bytes())
def test_random_bytes(case):
    data, labels = case
    check_loader(data, "random_bytes", labels)


@fuzz(0.05)
@given(deeply_nested())
def test_deep_nesting(case):
    data, labels = case
    check_loader(data, "deeply_nested", labels)


BASELINE_HASHES = {
    name: spec_api.load_spec_text(text, FUZZ_FILE).spec_hash for name, text in EXAMPLE_TEXTS.items()
}


@fuzz(0.06)
@given(equivalent_texts())
def test_equivalent_spellings_load_to_the_same_spec(case):
    name, data, labels = case
    outcome = check_loader(data, "equivalent_texts", (f"spec:{name}", *labels))
    assert outcome.kind == "accepted", f"{labels} made {name} unloadable: {outcome.error}"
    assert outcome.spec.spec_hash == BASELINE_HASHES[name], f"{labels} changed what {name} means"


@fuzz(0.01, minimum=3, maximum=60)
@given(near_size_limit())
def test_size_limit_counts_bytes_and_holds_exactly(case):
    data, size, labels = case
    outcome = check_loader(data, "near_size_limit", labels)
    if size > MAX_SPEC_BYTES:
        assert outcome.kind == "rejected", f"a {size}-byte spec was not refused"
        (problem,) = outcome.error.problems
        assert (problem.line, problem.column) == (1, 1) and f"the spec is {size} bytes" in problem.message
    else:
        assert outcome.kind == "accepted", f"a {size}-byte spec (a long comment) was refused: {outcome.error}"


# ----------------------------------------------------------------------------------------------------
# Issue 9: aliases that fan out, long scalars, odd URIs, control characters in names.

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
CASE_SECONDS = 5.0  # CPU seconds one case may take (a 154 s lint was the bug); CPU, not wall: the box is shared


@fuzz(0.04)
@given(alias_fan_out())
def test_aliases_that_fan_out_are_refused_fast(case):
    data, labels, expanded = case
    started = time.process_time()
    outcome = check_loader(data, "alias_fan_out", labels)
    assert time.process_time() - started < CASE_SECONDS, labels
    if "fan_out:string" in labels and expanded > MAX_EXPANDED_BYTES:
        assert outcome.kind == "rejected", f"{expanded} bytes after alias expansion were accepted"
        # Refused for what it expands to, or before that for its own size or its number of nodes.
        expected = ("expands to more than", "the spec is", f"holds more than {MAX_NODES} values")
        assert any(e in p.message for p in outcome.error.problems for e in expected), str(outcome.error)[:500]


@fuzz(0.04)
@given(long_scalars())
def test_long_values_are_quoted_by_a_short_prefix(case):
    data, labels = case
    started = time.process_time()
    check_loader(data, "long_scalars", labels)  # the property bounds every problem line
    assert time.process_time() - started < CASE_SECONDS, labels


@fuzz(0.05)
@given(odd_uris())
def test_accepted_uris_have_no_dotdot_control_character_or_missing_bucket(case):
    data, labels, target, uri = case
    outcome = check_loader(data, "odd_uris", labels)
    if outcome.kind != "accepted":
        return
    # (What was read, not what was drawn: YAML folds some line breaks, e.g. NEL, into spaces.)
    value = outcome.spec.storage.uri if target == ("storage", "uri") else outcome.spec.data.source
    assert not _CONTROL.search(value), f"{value!r} was accepted"
    assert value == value.strip(), f"{value!r} was accepted"
    if value.startswith(("file:", "s3:")):
        rest = value.split("://", 1)[-1]
        assert ".." not in re.split(r"[/\\]", rest), f"{value!r} was accepted"
    if value.startswith("s3:"):
        bucket, _, key = value.removeprefix("s3://").partition("/")
        assert value.startswith("s3://") and _S3_BUCKET.fullmatch(bucket), f"{value!r} was accepted"
        assert target == ("storage", "uri") or key.strip("/"), f"data source {value!r} names no object"


@fuzz(0.04)
@given(odd_names())
def test_accepted_names_are_whole_dns_labels(case):
    data, labels, field, value = case
    outcome = check_loader(data, "odd_names", labels)
    if outcome.kind != "accepted":
        return
    accepted = outcome.spec.metadata.name if field == ("metadata", "name") else outcome.spec.resolved["serving"]["kserve"]["namespace"]
    assert _DNS_LABEL.fullmatch(accepted) and len(accepted) <= 63, f"{accepted!r} was accepted as {'.'.join(field)}"


# ----------------------------------------------------------------------------------------------------
# Deterministic checks: the oracle itself, and one strict xfail per known loader bug.


@pytest.mark.parametrize("name", sorted(EXAMPLE_TEXTS))
def test_every_example_passes_the_property_unchanged(name):
    outcome = check_loader(EXAMPLE_TEXTS[name], "examples", record=False)
    assert outcome.kind == "accepted"
    dumped = check_loader(yaml.safe_dump(yaml.safe_load(EXAMPLE_TEXTS[name])), "examples", record=False)
    assert (
        dumped.spec.spec_hash == outcome.spec.spec_hash
    )  # the mutation strategy's unmutated case is a valid spec


def test_the_property_fails_on_a_foreign_exception(monkeypatch):
    def explode(data, file):
        raise KeyError("boom")

    monkeypatch.setattr(spec_api, "load_spec_text", explode)
    with pytest.raises(AssertionError, match="raised KeyError, not SpecError"):
        check_loader("a: 1\n", "oracle", record=False)


@pytest.mark.parametrize(
    "problem",
    [
        SpecProblem(FUZZ_FILE, 0, 0, "", "cannot read"),
        SpecProblem(FUZZ_FILE, 1, 1, "", " "),
        SpecProblem("other.yaml", 1, 1, "", "elsewhere"),
        SpecProblem(FUZZ_FILE, 9, 1, "", "past the last line"),
        SpecProblem(FUZZ_FILE, 1, 40, "", "past the end of the line"),
    ],
    ids=["no-location", "blank-message", "wrong-file", "line-out-of-range", "column-out-of-range"],
)
def test_the_property_fails_on_a_badly_located_problem(monkeypatch, problem):
    def reject(data, file):
        raise SpecError([problem])

    monkeypatch.setattr(spec_api, "load_spec_text", reject)
    with pytest.raises(AssertionError):
        check_loader("a: 1\nb: 2\n", "oracle", record=False)


def test_the_property_fails_on_an_accepted_spec_that_does_not_round_trip(monkeypatch):
    spec = spec_api.load_spec_text(EXAMPLE_TEXTS["iris"], FUZZ_FILE)
    # Typed fields that disagree with the resolved dict: from_dict(to_dict()) gives a different spec.
    broken = dataclasses.replace(
        spec, training=dataclasses.replace(spec.training, epochs=spec.training.epochs + 1)
    )
    monkeypatch.setattr(spec_api, "load_spec_text", lambda data, file: broken)
    with pytest.raises(AssertionError, match="differs"):
        check_loader("x", "oracle", record=False)


@pytest.mark.parametrize(
    "data",
    [pytest.param(data, id=f"{name}-{i}") for name, cases in FOUND_BUGS.items() for i, data in enumerate(cases)],
)
def test_found_bugs_give_located_errors(data):
    with pytest.raises(SpecError) as info:
        spec_api.load_spec_text(data, FUZZ_FILE)
    assert_located(info.value, data)


_NESTING_PROBE = """
import sys
from mlspec.spec import SpecError, load_spec_text
try:
    load_spec_text(sys.stdin.read(), "deep.yaml")
    print("accepted")
except SpecError as err:
    print("SpecError", err.problems[0].line, err.problems[0].column, err.problems[0].message)
"""


@pytest.mark.parametrize(
    "text", ["[" * 40000 + "]" * 40000, "- " * 40000 + "x\n", "{a: " * 40000 + "}" * 40000]
)
def test_very_deep_nesting_is_refused_without_crashing(text):
    """libyaml's composer recurses in C once per level: without the loader's depth check on the event stream
    ~25,000 levels (a 60 KB spec) overflow the C stack and kill the process (an Airflow dag-processor).
    Run in a subprocess so a regression cannot take the test session with it."""
    assert len(text.encode()) < 1024 * 1024  # well under the size limit: only nesting can refuse it
    result = subprocess.run(
        [sys.executable, "-c", _NESTING_PROBE], input=text, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"the loader process died with exit code {result.returncode}"
    assert result.stdout.startswith("SpecError"), result.stdout + result.stderr[-2000:]


_BOMB_PROBE = """
import resource, sys
from mlspec.spec import SpecError, load_spec_text
text = sys.stdin.read()
vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = vm + 128 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    load_spec_text(text, "bomb.yaml")
    print("accepted")
except SpecError as err:
    print("SpecError", err.problems[0].line, err.problems[0].column, err.problems[0].message)
except MemoryError:
    print("MemoryError")
"""


def test_merge_key_bomb_is_refused_within_128_mib():
    """PyYAML's flatten_mapping copies every merged entry (fan**levels of them) before anything is counted;
    the loader merges itself, through its node counter, so MAX_NODES refuses this 432-byte spec."""
    text = merge_bomb(levels=8)
    assert len(text.encode()) < 500
    result = subprocess.run(
        [sys.executable, "-c", _BOMB_PROBE], input=text, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.startswith("SpecError"), result.stdout + result.stderr[-2000:]


def test_merge_key_values_can_be_overridden():
    """Overriding a merged key is what merge keys are for (yaml.safe_load gives the override too)."""
    text = _VALID_IRIS.replace(
        "    - dense: {units: 16, activation: relu}\n    - dense: {units: 3, activation: softmax}\n",
        "    - dense: &hidden {units: 16, activation: relu}\n"
        "    - dense: {<<: *hidden, units: 3, activation: softmax}\n",
    )
    assert yaml.safe_load(text)["model"]["layers"][1] == {"dense": {"units": 3, "activation": "softmax"}}
    spec = spec_api.load_spec_text(text, FUZZ_FILE)
    assert spec.model.layers[1].to_mapping()["dense"]["units"] == 3
