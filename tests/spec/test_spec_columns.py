"""data.features' column forms and data.exclude (issue 13 §1): the schema accepts a list of names, a mapping of
name -> type or {type, missing, encode, max_categories}, and data.exclude; a mistake in one of them is reported at
its line with the word it meant; the README's reference lists each column key."""

from __future__ import annotations

from tests.fixtures.paths import SPECS

from mlspec.ml.columns import Column
from mlspec.spec import SpecError, resolve_spec
from mlspec.spec.reference import markdown
from mlspec.spec.schema import validate
from mlspec.spec.yaml_loader import load_yaml

IRIS = (SPECS / "iris.yaml").read_text()


def doc(data: str):
    return load_yaml(IRIS.replace("  source: builtin:iris\n", data), "penguins.yaml")


PENGUINS = (
    "  source: file://data/penguins.csv\n"  # line 12
    "  label: species\n"
    "  features:\n"
    "    island: {type: category}\n"  # line 15
    "    bill_length_mm: {type: number, missing: median}\n"
    "    body_mass_g: number\n"
    "    sex: {type: category, missing: {constant: unknown}, encode: one_hot, max_categories: 10}\n"
)


def test_the_mapping_form_validates_and_keeps_what_the_author_wrote() -> None:
    resolved = resolve_spec(doc(PENGUINS)).to_dict()["data"]
    assert resolved["features"] == {
        "island": {"type": "category"},
        "bill_length_mm": {"type": "number", "missing": "median"},
        "body_mass_g": "number",
        "sex": {"type": "category", "missing": {"constant": "unknown"}, "encode": "one_hot", "max_categories": 10},
    }  # no defaults filled in: lint sees an encode the author wrote, not one the schema added
    assert resolved["exclude"] == []


def test_exclude_and_a_plain_list_validate() -> None:
    assert validate(doc("  source: file://data/penguins.csv\n  label: species\n  exclude: [year]\n")) == []
    assert validate(doc("  source: file://data/penguins.csv\n  features: [island, sex]\n")) == []


def test_a_mistake_in_a_column_is_reported_at_its_line_with_the_word_it_meant() -> None:
    problems = validate(
        doc(
            "  source: file://data/penguins.csv\n"
            "  features:\n"
            "    island: categroy\n"  # line 14
            "    bill: {type: number, missing: medain}\n"
            "    sex: {missing: {constant: [1]}}\n"
            "    mass: {type: number, encode: onehot, max_categories: 1}\n"
            "  exclude: year\n"  # line 18
        )
    )
    found = {(p.path, p.line): p.message for p in problems}
    assert found == {
        ("data.features.island", 14): "'categroy' is not allowed; allowed values: number, integer, boolean, category; "
        "did you mean `category`?",
        ("data.features.bill.missing", 15): "'medain' is not allowed; allowed values: error, mean, median, "
        "most_frequent, drop_row; did you mean `median`?",
        ("data.features.sex.missing.constant", 16): "[1] is not of type 'string', 'number', 'boolean'",
        ("data.features.mass.encode", 17): "'onehot' is not allowed; allowed values: one_hot, ordinal; did you mean "
        "`one_hot`?",
        ("data.features.mass.max_categories", 17): "1 is less than the minimum of 2",
        ("data.exclude", 18): "'year' is not of type 'array'",
    }


def test_an_empty_mapping_or_an_unknown_column_key_is_refused() -> None:
    try:
        resolve_spec(doc("  source: file://data/penguins.csv\n  features:\n    sex: {type: category, fill: x}\n"))
    except SpecError as exc:
        assert [p.message for p in exc.problems] == ["unknown key `fill`; allowed keys: encode, max_categories, missing, type"]
    else:
        raise AssertionError("an unknown column key passed")
    assert validate(doc("  source: file://data/penguins.csv\n  features: {}\n"))


def test_the_reference_lists_each_column_key_with_its_default() -> None:
    rows = {line.split("|")[1].strip(): line for line in markdown().splitlines() if line.startswith("| `data.")}
    assert "`\"error\"`" in rows["`data.features.<name>.missing`"]
    assert "`\"one_hot\"`" in rows["`data.features.<name>.encode`"]
    assert "`null`" in rows["`data.features.<name>.type`"] and "Omitted: inferred" in rows["`data.features.<name>.type`"]
    assert "`[]`" in rows["`data.exclude`"]


def test_the_data_spec_gives_the_declared_columns_typed_and_keeps_todays_shapes() -> None:
    data = resolve_spec(doc(PENGUINS)).data
    assert list(data.features) == ["island", "bill_length_mm", "body_mass_g", "sex"]
    columns = data.declared_columns
    assert list(columns) == list(data.features)
    assert columns["bill_length_mm"] == Column("bill_length_mm", "number", missing="median")
    assert columns["body_mass_g"] == Column("body_mass_g", "number")
    assert columns["sex"] == Column("sex", "category", missing="constant", constant="unknown", max_categories=10)
    assert columns["island"].datatype == "BYTES" and data.exclude == ()
    listed = resolve_spec(doc("  source: file://data/penguins.csv\n  features: [island, sex]\n")).data
    assert listed.features == ("island", "sex") and listed.declared_columns == {"island": None, "sex": None}
    every = resolve_spec(doc("  source: file://data/penguins.csv\n  exclude: [year]\n")).data
    assert every.features is None and every.exclude == ("year",) and every.declared_columns == {}
    iris = resolve_spec(load_yaml(IRIS, "iris.yaml")).data
    assert iris.features is None and iris.exclude == () and iris.declared_columns == {}


def test_a_column_mapping_without_a_type_is_accepted_and_keeps_its_settings() -> None:
    data = resolve_spec(doc("  source: file://data/penguins.csv\n  features:\n    island: {missing: most_frequent}\n"
                            "    bill_length_mm: {missing: median}\n")).data
    assert data.declared_columns == {
        "island": Column("island", None, missing="most_frequent"),
        "bill_length_mm": Column("bill_length_mm", None, missing="median"),
    }
