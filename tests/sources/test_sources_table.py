"""The data sources are one table (mlspec.sources.SOURCE_KINDS): it agrees with the vocabulary and the schema,
lint and prepare_data read it, and no module outside mlspec/sources and mlspec/storage tells a source or a
store apart by comparing its scheme."""

from __future__ import annotations

import ast

import pytest
from tests.fixtures.paths import REPO, SPECS

from mlspec import vocabulary
from mlspec.operations_dag import runs_here
from mlspec.operators.data import PrepareDataOperator
from mlspec.sources import SOURCE_KINDS, schemes_text, source_kind
from mlspec.spec import SpecError, load_spec_text
from mlspec.spec.schema import load_schema

SCHEMA = load_schema()["properties"]
PACKAGE = REPO / "plugins" / "mlspec"


def spec_text(source: str) -> str:
    return (SPECS / "iris.yaml").read_text().replace("source: builtin:iris", f"source: '{source}'")


def test_every_named_data_set_of_the_vocabulary_belongs_to_a_kind_that_loads_it():
    for name in vocabulary.DATA_SOURCES:
        kind = source_kind(name)
        assert kind is not None and kind.load_dataset is not None and name in kind.datasets, name
    named = [kind for kind in SOURCE_KINDS.values() if kind.load_dataset is not None]
    assert sorted(n for kind in named for n in kind.datasets) == sorted(vocabulary.DATA_SOURCES)


def test_each_kind_loads_by_name_reads_a_file_or_reads_a_table_and_the_schema_names_it():
    description = SCHEMA["data"]["properties"]["source"]["description"]
    for scheme, kind in SOURCE_KINDS.items():
        assert kind.scheme == scheme and kind.prefix.startswith(scheme + ":")
        assert [kind.load_dataset, kind.read_bytes, kind.read_table].count(None) == 2, scheme
        assert kind.prefix.rstrip("/") in description, scheme
        assert kind.title and kind.next_step
    assert schemes_text() == "builtin:, keras:, file://, s3:// or sql://"


def test_a_file_kind_reads_every_data_format_the_schema_offers():
    formats = [value for value in SCHEMA["data"]["properties"]["format"]["enum"] if value is not None]
    assert formats == list(vocabulary.DATA_FORMATS)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("gs://bucket/data.csv", "unsupported source 'gs://bucket/data.csv'; use builtin:, keras:, file://, s3:// or sql://"),
        ("builtin:mnist", "unknown dataset 'builtin:mnist'; available: builtin:digits, builtin:iris"),
        ("s3://bucket", "names a bucket, not an object"),
    ],
)
def test_lint_reads_the_table(source: str, message: str):
    with pytest.raises(SpecError) as raised:
        load_spec_text(spec_text(source))
    assert message in str(raised.value)


def operator(source: str) -> PrepareDataOperator:
    return PrepareDataOperator(spec=load_spec_text(spec_text(source)).to_dict(), task_id="prepare_data")


def test_prepare_data_gives_the_next_step_of_its_sources_kind():
    """It said "check data.source in the spec (and its connection for s3://)" whatever the source."""
    assert "data.connection" in operator("s3://bucket/iris.csv").next_step
    assert "MLSPEC_DATA_ROOTS" in operator("file:///data/iris.csv").next_step
    assert "internet" in SOURCE_KINDS["keras"].next_step


def test_prepare_data_refuses_a_source_no_kind_reads():
    with pytest.raises(ValueError, match="unsupported data source"):
        operator("builtin:iris").read_source_bytes("gs://bucket/iris.csv")


def test_what_runs_on_this_machine_is_what_the_kinds_say():
    resolved = load_spec_text(spec_text("builtin:iris")).to_dict()
    assert runs_here(resolved)
    for source, here in [
        ("file:///data/iris.csv", True), ("s3://bucket/iris.csv", False), ("keras:mnist", False), ("sql://db", False),
    ]:
        assert runs_here({**resolved, "data": {**resolved["data"], "source": source}}) is here, source
    assert not runs_here({**resolved, "storage": {**resolved["storage"], "uri": "s3://bucket/models"}})


# --------------------------------------------------------------------------- no scheme compared elsewhere
SCHEMES = frozenset(SOURCE_KINDS) | {"file", "s3"}
OWNERS = ("sources", "storage")


def _scheme_literals(tree: ast.AST):
    """String literals that tell a scheme apart: compared (==, !=, in), or a prefix given to startswith."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                items = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                yield from (i for i in items if isinstance(i, ast.Constant) and i.value in SCHEMES)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "startswith":
            for arg in node.args:
                items = arg.elts if isinstance(arg, ast.Tuple) else [arg]
                yield from (
                    i for i in items
                    if isinstance(i, ast.Constant) and isinstance(i.value, str) and i.value.split(":")[0] in SCHEMES
                    and ":" in i.value
                )


def test_no_scheme_is_compared_outside_the_sources_and_storage_packages():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in OWNERS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}" for node in _scheme_literals(tree)]
    assert found == []


def test_the_scan_finds_a_scheme_compare():
    tree = ast.parse('if uri.startswith("s3://") or scheme == "file" or s in ("builtin", "keras"): pass')
    assert [node.value for node in _scheme_literals(tree)] == ["s3://", "file", "builtin", "keras"]
