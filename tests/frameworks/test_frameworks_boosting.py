"""What boosting libraries share (mlspec.ml.frameworks.boosting) and the parameter table read from a
constructor's signature (signature_params), on a stand-in class: no boosting library needed."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import pytest

from mlspec.ml.frameworks.boosting import MAX_ROUND_LINES, ml_opset, shown_rounds
from mlspec.ml.frameworks.signature_params import SignatureParams, class_params, render


class Booster:
    """A stand-in with the kinds of annotations XGBoost and LightGBM use, and their get_params()."""

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        learning_rate: float | None = None,
        objective: str | Callable[[Any], Any] | None = None,
        callbacks: list[Callable] | None = None,
        class_weight: dict | str | None = None,
        eval_metric: str | list[str] | None = None,
        extra: Any = None,
        custom: Callable[[Any], Any] = print,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.objective = objective
        self.callbacks = callbacks
        self.class_weight = class_weight
        self.eval_metric = eval_metric
        self.extra = extra
        self.custom = custom

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in list(inspect.signature(Booster.__init__).parameters)[1:]
        }


class Classifier(Booster):
    """Like XGBClassifier: its own constructor takes **kwargs and passes them on."""

    def __init__(self, *, objective: str = "binary", **kwargs: Any) -> None:
        super().__init__(objective=objective, **kwargs)


def test_annotations_become_json_schema():
    params = class_params(Classifier)
    assert params["n_estimators"] == {"default": 100, "schema": {"type": "integer"}}
    assert params["learning_rate"]["schema"] == {"anyOf": [{"type": "number"}, {"type": "null"}]}
    # The subclass's own annotation wins; the callable branch of the base's has no JSON form.
    assert params["objective"] == {"default": "binary", "schema": {"type": "string"}}
    assert params["class_weight"]["schema"] == {
        "anyOf": [{"type": "object"}, {"type": "string"}, {"type": "null"}]
    }
    assert params["eval_metric"]["schema"]["anyOf"][1] == {"type": "array", "items": {"type": "string"}}
    assert params["extra"]["schema"] == {}  # Any: whatever the library accepts
    # Null alone would only restate the default: refused, saying why.
    assert "a list of" in params["callbacks"]["refused"]
    assert params["custom"]["refused"] == "it takes a Python callable, which a spec cannot express"


@pytest.fixture
def table(tmp_path) -> SignatureParams:
    table = SignatureParams(
        library="sklearn",
        classes={"classification": f"{__name__}.Classifier"},
        file=tmp_path / "t.json",
        module="m",
    )
    table.file.write_text(render(table.generate()))
    return table


def test_the_rendered_table_is_json_with_one_parameter_per_line(table):
    loaded = json.loads(table.file.read_text())
    assert loaded["library"] == "sklearn" and loaded["classes"]["classification"]["class"].endswith(
        ".Classifier"
    )
    assert (
        '    "n_estimators": {"default": 100, "schema": {"type": "integer"}},'
        in table.file.read_text().splitlines()
    )
    assert table.regenerate == "python -m m --write"


def test_check_names_the_parameter_and_what_it_takes(table):
    assert (
        table.check("classification", {"n_estimators": 5, "learning_rate": 1, "eval_metric": ["auc"]}) == []
    )
    problems = dict(
        table.check(
            "classification",
            {"n_estimatorz": 5, "learning_rate": "fast", "n_estimators": 2.0, "custom": None},
        )
    )
    assert (
        problems[("n_estimatorz",)]
        == "unknown parameter `n_estimatorz` for Classifier; did you mean `n_estimators`?"
    )
    assert problems[("learning_rate",)] == "`learning_rate` must be a number or null, got 'fast'"
    assert problems[("n_estimators",)] == "`n_estimators` must be an integer, got 2.0"  # integers are strict
    assert problems[("custom",)].startswith("`custom` cannot be set from a spec: it takes a Python callable")
    assert table.check("classification", [1]) == [
        ((), "model.params must be a mapping of Classifier parameters, got [1]")
    ]


def test_param_schema(table):
    assert table.param_schema("classification", "n_estimators") == {"type": "integer"}
    with pytest.raises(KeyError, match="did you mean `learning_rate`"):
        table.param_schema("classification", "learning_rat")
    with pytest.raises(ValueError, match="cannot be set from a spec"):
        table.param_schema("classification", "custom")


def test_every_round_is_shown_up_to_the_limit_then_about_that_many():
    assert shown_rounds(7) == set(range(1, 8))
    assert shown_rounds(MAX_ROUND_LINES) == set(range(1, MAX_ROUND_LINES + 1))
    many = shown_rounds(2000)
    assert {1, 40, 2000} <= many and MAX_ROUND_LINES <= len(many) <= MAX_ROUND_LINES + 2


@pytest.mark.parametrize(("opset", "ml"), [(13, 2), (15, 2), (16, 3), (17, 3), (21, 3)])
def test_ml_opset_is_the_one_released_with_the_opset_at_most_what_skl2onnx_takes(opset, ml):
    assert ml_opset(opset) == ml
