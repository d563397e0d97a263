"""Spec loading under hostile input (issue 9): expansion measured in bytes, short quotes in messages, whole-
string patterns, URIs, data sources, reshape sizes and the lint warnings (sub-hourly schedules, absurd models).

Every test here failed on the loader before the fix it names. Inputs that could take the test process down if
the loader regressed run in a subprocess with a memory limit and a timeout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fixtures.paths import REPO, SPECS
from tests.spec.test_spec_loader import MINIMAL

from mlspec.ml.frameworks.keras_lint import estimate_parameters
from mlspec.spec import SpecError, load_spec_text
from mlspec.spec.lint import check, check_local_files
from mlspec.spec.schema import fill_defaults, fill_task_defaults
from mlspec.spec.yaml_loader import MAX_EXPANDED_BYTES, MAX_NODES, load_yaml

IRIS = MINIMAL  # the smallest valid spec, shared with the loader tests
DIGITS = IRIS.replace("builtin:iris", "builtin:digits").replace("units: 3", "units: 10")


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "s.yaml")
    return [str(p) for p in info.value.problems]


def lint_problems(text: str, file: str = "s.yaml") -> list:
    """Errors and warnings of a spec the loader accepts (what `mlspec lint` reports besides local files)."""
    load_spec_text(text, file)
    doc = load_yaml(text, file)
    return check(doc, fill_task_defaults(fill_defaults(doc.data)))


def warnings_of(text: str) -> list[str]:
    return [p.message for p in lint_problems(text) if p.severity == "warning"]


# -- one spec, huge after alias expansion (issue 9, broken 5) -------------------------------------------

_PROBE = """
import json, resource, sys, time
from mlspec.spec import SpecError, load_spec_text
text = sys.stdin.read()
vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = vm + 256 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
started = time.perf_counter()
try:
    load_spec_text(text, "bomb.yaml")
    outcome = {"outcome": "accepted"}
except SpecError as err:
    outcome = {"outcome": "SpecError", "messages": [str(p) for p in err.problems]}
except MemoryError:
    outcome = {"outcome": "MemoryError"}
outcome["seconds"] = time.perf_counter() - started
print(json.dumps(outcome))
"""


def run_probe(text: str) -> dict:
    """load_spec_text in a subprocess with 256 MiB of headroom and 60 s; its outcome."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE], input=text, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("loading the spec took more than 60 s")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def fan_out(value_bytes: int, references: int, where: str = "x_unknown") -> str:
    """A valid spec plus one long string anchored once and referenced many times through aliases."""
    return IRIS + f"{where}: [&b {'a' * value_bytes}" + ", *b" * references + "]\n"


@pytest.mark.parametrize(
    "value_bytes, references",
    [(900_000, 19_000), (50_000, 10_000)],
    ids=["900KB-string-x19000", "50KB-string-x10000"],
)
def test_alias_fan_out_of_a_long_string_is_refused_fast_and_small(value_bytes, references):
    """A 976 KB spec took 154 s to lint; a 90 KB one took 4.4 GB: the node count was under its limit, the bytes
    the aliases expand to were never counted."""
    text = fan_out(value_bytes, references)
    assert len(text.encode()) < 1024 * 1024
    outcome = run_probe(text)
    assert outcome["outcome"] == "SpecError", outcome
    assert outcome["seconds"] < 2, outcome
    (message,) = outcome["messages"]
    assert "alias" in message and f"{MAX_EXPANDED_BYTES} bytes" in message
    assert len(message) < 300  # the value itself is never quoted


def test_fan_out_under_a_tag_list_is_refused_before_the_schema():
    text = IRIS.replace("  name: tiny\n", "  name: tiny\n  tags: &t [" + "b" * 50_000 + "]\n") + "x:\n" + "".join(
        f"  k{i}: *t\n" for i in range(3000)
    )
    (message,) = problems(text)
    assert "expands to more than" in message


def test_a_spec_whose_expansion_fits_is_still_accepted():
    """Anchors and aliases are fine while the expanded document stays small."""
    text = IRIS.replace(
        "    - dense: {units: 3, activation: softmax}\n",
        "    - dense: &hidden {units: 16, activation: relu}\n" * 1
        + "    - dense: *hidden\n" * 20
        + "    - dense: {units: 3, activation: softmax}\n",
    )
    assert len(load_spec_text(text).model.layers) == 22


def test_many_layers_without_aliases_are_not_blamed_on_aliases():
    """The error for 10,000 layers said "(alias expansion?)" although the spec has no alias."""
    text = IRIS.replace("model:\n  layers:\n", "model:\n  layers:\n" + "    - dense: {units: 3}\n" * 10_000)
    (message,) = problems(text)
    assert "alias" not in message
    assert f"more than {MAX_NODES}" in message


# -- messages quote a short prefix of a value -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        IRIS.replace("builtin:iris", "builtin:" + "x" * 200_000),
        IRIS.replace("builtin:iris", "ftp://" + "x" * 200_000),
        IRIS + "storage: {uri: 'gs://" + "y" * 200_000 + "'}\n",
        IRIS.replace("name: tiny", "name: " + "N" * 200_000),
        IRIS + "serving: {namespace: " + "Q" * 200_000 + "}\n",
        IRIS + "registry: {backend: " + "z" * 200_000 + "}\n",
        IRIS + "serving: {resources: {cpu: '" + "9" * 100_000 + "x'}}\n",
        IRIS + "schedule: '" + "1" * 100_000 + "'\n",
        IRIS + "apiVersion_x: 1\n" + "metadata_x: {" + "k" * 100_000 + ": 1}\n",
    ],
    ids=["builtin", "scheme", "storage", "name", "namespace", "enum", "pattern", "schedule", "unknown-key"],
)
def test_messages_quote_at_most_a_short_prefix_of_a_value(text):
    for message in problems(text):
        assert len(message) < 400, message[:500]


# -- patterns match the whole string (issue 9, broken 6) --------------------------------------------


@pytest.mark.parametrize(
    "text, path",
    [
        (IRIS.replace("name: tiny", 'name: "iris\\n"'), "metadata.name"),
        (IRIS + 'serving: {namespace: "default\\n"}\n', "serving.namespace"),
        (IRIS + 'storage: {uri: "s3://b/x", connection: "aws_default\\n"}\n', "storage.connection"),
        (IRIS + 'registry: {connection: "mlflow\\n"}\n', "registry.connection"),
        (IRIS + 'serving: {resources: {cpu: "1\\n"}}\n', "serving.resources.cpu"),
        (IRIS + 'serving: {resources: {memory: "1Gi\\n"}}\n', "serving.resources.memory"),
        (IRIS + 'evaluation: {thresholds: {"accuracy\\n": {min: 0.5}}}\n', "evaluation.thresholds"),
    ],
)
def test_a_trailing_newline_never_passes_a_pattern(text, path):
    """`name: "iris\\n"` passed lint: `$` matches before a trailing newline (re.match and jsonschema's re.search)."""
    assert any(f": {path}" in message for message in problems(text)), problems(text)


def _patterns(node, where=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield where, value
            else:
                yield from _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _patterns(value, f"{where}/{index}")


SCHEMA_PATTERNS = sorted(set(_patterns(json.loads((REPO / "schemas" / "model-spec.schema.json").read_text()))))


def test_the_schema_has_patterns_to_audit():
    assert len(SCHEMA_PATTERNS) >= 5


@pytest.mark.parametrize("where, pattern", SCHEMA_PATTERNS, ids=[w for w, _ in SCHEMA_PATTERNS])
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_schema_pattern_matches_the_whole_string(where, pattern, data):
    """jsonschema matches `pattern` with re.search: every anchored pattern must refuse a value plus a line break."""
    value = data.draw(st.from_regex(re.compile(pattern.replace("(?!\\n)", "")), fullmatch=True))
    assume_matches = re.search(pattern, value)
    if assume_matches is None:  # from_regex ignores the lookahead it cannot express
        return
    for tail in ("\n", "\r\n", "\n\n", "\nx"):
        assert re.search(pattern, value + tail) is None, f"{where}: {pattern!r} accepts {value + tail!r}"


# -- URIs: no '..' anywhere, no control characters, a bucket (issue 9, weak) --------------------------------


@pytest.mark.parametrize(
    "extra, path",
    [
        ("storage: {uri: 'file://..'}", "storage.uri"),
        ("storage: {uri: 'file://../models'}", "storage.uri"),
        ("storage: {uri: 's3://../x'}", "storage.uri"),
        ("storage: {uri: 's3://bucket/a/..'}", "storage.uri"),
        ("storage: {uri: 's3://bucket\\\\..\\\\x'}", "storage.uri"),
    ],
)
def test_dotdot_in_any_part_of_a_storage_uri_is_refused(extra, path):
    assert any(f": {path}: " in m and "'..'" in m for m in problems(IRIS + extra + "\n")), problems(IRIS + extra + "\n")


@pytest.mark.parametrize("source", ["file://../outside.csv", "file://..", "file://data/../../x.npz", "s3://../d.csv"])
def test_dotdot_in_a_data_source_is_refused(source):
    text = IRIS.replace("source: builtin:iris", f"source: '{source}'\n  format: csv")
    assert any(": data.source: " in m and "'..'" in m for m in problems(text)), problems(text)


@pytest.mark.parametrize(
    "uri, fragment",
    [
        ('"s3://models\\n/x"', "control character"),
        ('"s3://models/x\\n"', "control character"),
        ('"file://models\\t"', "control character"),
        ("'s3://'", "bucket"),
        ("'s3:///prefix'", "bucket"),
        ("'s3://Bad_Bucket/x'", "bucket"),
        ("'s3://ab/x'", "bucket"),
        ("'file://'", "path"),
    ],
)
def test_storage_uris_need_a_bucket_or_path_and_no_control_characters(uri, fragment):
    messages = problems(IRIS + f"storage: {{uri: {uri}}}\n")
    assert any(": storage.uri: " in m and fragment in m for m in messages), messages


@pytest.mark.parametrize(
    "source, fragment",
    [('"s3://data\\n/x.csv"', "control character"), ("'s3://data'", "object"), ("'s3:///x.csv'", "bucket")],
)
def test_s3_data_sources_name_an_object_in_a_bucket(source, fragment):
    text = IRIS.replace("source: builtin:iris", f"source: {source}\n  format: csv")
    assert any(": data.source: " in m and fragment in m for m in problems(text)), problems(text)


def test_good_uris_still_pass():
    for extra in ("storage: {uri: 's3://models/mlspec'}", "storage: {uri: 'file://models'}", "storage: {uri: 'file:///srv/models'}"):
        load_spec_text(IRIS + extra + "\n")
    load_spec_text(IRIS.replace("source: builtin:iris", "source: 's3://data-bucket/iris/iris.csv'"))


# -- a reshape must fit the known data (issue 9, weak) --------------------------------------------------


def test_a_reshape_that_cannot_hold_the_known_data_is_refused():
    text = DIGITS.replace("data:\n  source: builtin:digits\n", "data:\n  source: builtin:digits\n  preprocess:\n    - reshape: [9, 9, 1]\n")
    (message,) = problems(text)
    assert message.startswith("s.yaml:8:7: data.preprocess[0].reshape: ")
    assert "81" in message and "64" in message


@pytest.mark.parametrize(
    "source, shape",
    [("builtin:digits", "[8, 8, 1]"), ("builtin:digits", "[64]"), ("keras:mnist", "[28, 28, 1]"), ("keras:mnist", "[784]")],
)
def test_a_reshape_of_the_right_size_passes(source, shape):
    text = DIGITS.replace("builtin:digits", source).replace(
        f"  source: {source}\n", f"  source: {source}\n  preprocess:\n    - reshape: {shape}\n"
    )
    load_spec_text(text)


# -- lint warnings: sub-hourly schedules, absurd models (issue 9, weak) -----------------------------------


@pytest.mark.parametrize("schedule", ["'* * * * *'", "'*/5 * * * *'", "'0,30 * * * *'", "'@continuous'", "'*/15 9-17 * * 1-5'"])
def test_a_sub_hourly_schedule_is_a_warning(schedule):
    text = IRIS + f"schedule: {schedule}\n"
    spec = load_spec_text(text)  # a warning never refuses the spec
    assert spec.schedule == schedule.strip("'")
    (warning,) = warnings_of(text)
    assert "an hour" in warning and "keep_runs" in warning


@pytest.mark.parametrize("schedule", ["'@hourly'", "'0 * * * *'", "'@daily'", "'0 3 * * 1'", "null", "{assets: ['s3://d/x.csv']}"])
def test_hourly_and_slower_schedules_are_not_warned_about(schedule):
    assert warnings_of(IRIS + f"schedule: {schedule}\n") == []


def huge_dense(layers: int, units: int) -> str:
    hidden = "".join(f"    - dense: {{units: {units}, activation: relu}}\n" for _ in range(layers))
    return IRIS.replace("  layers:\n", "  layers:\n" + hidden)


def test_an_absurd_parameter_count_is_a_warning():
    """199 dense layers of 65,536 units: about 850 G parameters (855 G had the first layer 65,536 inputs too)."""
    text = huge_dense(199, 65_536)
    load_spec_text(text)
    (warning,) = warnings_of(text)
    expected = (4 * 65_536 + 65_536) + 198 * (65_536 * 65_536 + 65_536) + (65_536 * 3 + 3)
    assert f"about {expected:,} parameters" in warning


def test_parameter_estimate_follows_keras():
    doc = load_yaml(
        DIGITS.replace("data:\n  source: builtin:digits\n", "data:\n  source: builtin:digits\n  preprocess:\n    - reshape: [8, 8, 1]\n").replace(
            "    - dense: {units: 10, activation: softmax}\n",
            "    - conv2d: {filters: 16, kernel_size: 3}\n    - max_pooling2d: {}\n    - batch_normalization: {}\n"
            "    - flatten: {}\n    - dense: {units: 32, use_bias: false}\n    - dense: {units: 10, activation: softmax}\n",
        )
    )
    resolved = fill_task_defaults(fill_defaults(doc.data))
    # conv 3*3*1*16+16 = 160 -> 6x6x16 -> pool 3x3x16 -> bn 4*16 = 64 -> flatten 144 -> 144*32 = 4608 -> 32*10+10 = 330
    assert estimate_parameters(resolved) == 160 + 64 + 4608 + 330


def test_a_sensible_model_gets_no_warning():
    assert warnings_of(huge_dense(3, 256)) == []
    for path in sorted(SPECS.glob("*.yaml")):
        assert warnings_of(path.read_text()) == [], path.name


# -- local data sources: regular files under the size cap (issue 9, weak) ---------------------------------


def local_problems(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cap: int | None = None) -> list[str]:
    monkeypatch.setenv("MLSPEC_HOME", str(tmp_path))
    (tmp_path / "data").mkdir(exist_ok=True)  # within MLSPEC_HOME only data/ may be read (issue 17)
    if cap is not None:
        monkeypatch.setenv("MLSPEC_MAX_SOURCE_BYTES", str(cap))
    text = IRIS.replace("source: builtin:iris", f"source: '{source}'\n  format: csv")
    doc = load_yaml(text, "s.yaml")
    return [str(p) for p in check_local_files(doc, fill_task_defaults(fill_defaults(doc.data)))]


def test_a_device_file_is_not_a_data_source(tmp_path, monkeypatch):
    """`file:///dev/zero` was read until 1.85 GB."""
    (message,) = local_problems("file:///dev/zero", tmp_path, monkeypatch)
    assert ": data.source: " in message and "system folder /dev" in message


def test_a_fifo_is_not_a_data_source_and_checking_it_does_not_block(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    os.mkfifo(tmp_path / "data" / "data.csv")
    (message,) = local_problems("file://data/data.csv", tmp_path, monkeypatch)
    assert "not a regular file" in message and "FIFO" in message


def test_a_folder_of_no_files_or_a_symlink_to_a_device_is_not_a_data_source(tmp_path, monkeypatch):
    """A folder is read file by file (issue 13); one with no regular file in it names no data."""
    (tmp_path / "data" / "folder.csv").mkdir(parents=True)
    (tmp_path / "data" / "zero.csv").symlink_to("/dev/zero")
    (tmp_path / "data" / "folder.csv" / "zero.csv").symlink_to("/dev/zero")  # never read as one of its files
    assert "no data files match" in local_problems("file://data/folder.csv", tmp_path, monkeypatch)[0]
    assert "system folder /dev" in local_problems("file://data/zero.csv", tmp_path, monkeypatch)[0]


def test_a_data_source_over_the_size_cap_is_refused(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    with open(tmp_path / "data" / "big.csv", "wb") as handle:
        handle.truncate(4097)  # sparse: no disk space used
    (message,) = local_problems("file://data/big.csv", tmp_path, monkeypatch, cap=4096)
    assert "4097 bytes" in message and "4096" in message


def test_a_regular_file_under_the_cap_and_a_missing_file_pass(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "iris.csv").write_text("a,label\n1,0\n")
    assert local_problems("file://data/iris.csv", tmp_path, monkeypatch) == []
    assert local_problems(f"file://{tmp_path}/data/iris.csv", tmp_path, monkeypatch) == []
    # A file that is not here may exist where the task runs: a warning naming where lint looked, no error.
    (problem,) = local_problems("file://data/elsewhere.csv", tmp_path, monkeypatch)
    assert f": warning: data.source: 'file://data/elsewhere.csv' is {tmp_path}/data/elsewhere.csv, which does not " in problem


# -- storage.keep_runs ------------------------------------------------------------------------------------


def test_keep_runs_has_a_default_and_a_minimum():
    assert load_spec_text(IRIS).storage.keep_runs == 20
    assert load_spec_text(IRIS + "storage: {keep_runs: 3}\n").storage.keep_runs == 3
    assert any(": storage.keep_runs: " in m for m in problems(IRIS + "storage: {keep_runs: 0}\n"))


def test_parameter_estimate_takes_integral_floats():
    """JSON Schema counts 3.0 as an integer: `kernel_size: 3.0` made the estimate raise TypeError (found by fuzzing)."""
    text = (SPECS / "cifar10.yaml").read_text().replace("kernel_size: 3", "kernel_size: 3.0", 1)
    assert "kernel_size: 3.0" in text
    spec = load_spec_text(text)
    assert estimate_parameters(spec.to_dict()) > 0


@pytest.mark.parametrize("uri", ["' file://models'", "'file://models '", '"\\u00a0s3://models/x"'])
def test_uris_with_surrounding_white_space_are_refused(uri):
    """urlparse strips leading white space, so ' file://models' passed as a file:// URI (found by fuzzing: YAML
    folds a NEL line break into a space)."""
    assert any(": storage.uri: " in m and "white space" in m for m in problems(IRIS + f"storage: {{uri: {uri}}}\n"))


def test_a_megabyte_of_tiny_values_is_refused_before_it_is_composed():
    """A 1 MiB `[1,1,1,...]` took 5 s: half a million nodes were composed before the builder counted them."""
    text = "a: [" + "1," * 500_000 + "1]\n"
    outcome = run_probe(text)
    assert outcome["outcome"] == "SpecError" and outcome["seconds"] < 1, outcome
    (message,) = outcome["messages"]
    assert f"more than {MAX_NODES} values" in message


def test_a_huge_reshape_gives_a_warning_not_an_overflow():
    """A reshape dimension of 10**400 made the parameter estimate overflow a float (found by fuzzing)."""
    text = IRIS.replace("source: builtin:iris", "source: 'file://t.csv'").replace(
        "  layers:\n", "  layers:\n    - flatten: {}\n    - dense: {units: 64}\n"
    ).replace("\ndata:\n", "\ndata:\n  preprocess:\n    - reshape: [" + "1" + "0" * 400 + "]\n", 1)
    (warning,) = warnings_of(text)
    assert "more than 10^40" in warning and len(warning) < 400


@pytest.mark.parametrize(
    "extra",
    [
        "storage: {uri: 's3://models/" + "k" * 3000 + "'}",
        "serving: {url: 'http://x/" + "u" * 3000 + "'}",
        "serving: {service_account: " + "s" * 300 + "}",
    ],
)
def test_free_text_fields_have_a_length_limit(extra):
    """A 500,000-character data.label was accepted (found by fuzzing); every free-text field has a maxLength now."""
    assert any("is too long" in m for m in problems(IRIS + extra + "\n"))
    label = IRIS.replace("source: builtin:iris", "source: builtin:iris\n  label: " + "é" * 300)
    assert any(": data.label: " in m and "is too long" in m for m in problems(label))


def test_the_fuzzers_mirrored_limits_match_the_loader():
    from tests.spec import fuzz_strategies

    from mlspec.spec import yaml_loader

    assert fuzz_strategies.MAX_EXPANDED_BYTES == yaml_loader.MAX_EXPANDED_BYTES
    assert fuzz_strategies.MAX_NODES == yaml_loader.MAX_NODES
    assert fuzz_strategies.MAX_SPEC_BYTES == yaml_loader.MAX_SPEC_BYTES


def test_no_problem_carries_a_whole_long_value_whoever_wrote_it():
    """The estimator table's messages quoted a whole value (`got [{'a': [[{'a': ...` for 5,500 characters, found by
    fuzzing); every problem's message is cut to a bounded length."""
    text = (SPECS / "iris-forest.yaml").read_text()
    assert "n_estimators:" in text
    deep = "[" * 20 + ", ".join(["{a: 150}"] * 300) + "]" * 20
    text = re.sub(r"n_estimators: \d+", f"n_estimators: {deep}", text)
    messages = problems(text)
    assert any("n_estimators" in m for m in messages)
    assert all(len(m) < 800 for m in messages), max(messages, key=len)[:200]
