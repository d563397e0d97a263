"""Helpers for the Models app tests: the spec they run, and reading the rendered pages back."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tests.fixtures.paths import SPECS

STRONG = "estimator: random_forest\n  params: {n_estimators: 100, max_depth: 6, random_state: 0}"
WEAK = "estimator: decision_tree\n  params: {max_depth: 1, random_state: 0}"


def forest_spec(name: str, *, weak: bool = False) -> str:
    """specs/iris-forest.yaml under another name; `weak`: a one-split tree (about 0.6 accuracy) whose
    thresholds let it through, so the champion gate decides."""
    text = (SPECS / "iris-forest.yaml").read_text().replace("name: iris-forest", f"name: {name}")
    if weak:
        text = text.replace(STRONG, WEAK)
        text = text.replace("accuracy: {min: 0.85}", "accuracy: {min: 0.3}").replace("f1: {min: 0.85}", "f1: {min: 0.1}")
    return text


def run_spec_text(specs: Path, text: str, name: str) -> tuple[Any, Any]:
    """Write the spec into the specs folder and run its DAG through Airflow (dag.test)."""
    from mlspec.compiler import build_dag
    from mlspec.spec import load_spec

    (specs / f"{name}.yaml").write_text(text)
    spec = load_spec(specs / f"{name}.yaml")
    return spec, build_dag(spec, spec_text=text).test()


@dataclass
class TwoRuns:
    specs: Path
    server_url: str
    first_spec: Any
    second_spec: Any
    first: Any  # the DagRun
    second: Any

    @property
    def name(self) -> str:
        return self.second_spec.name


def registry():
    from mlspec.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry(None)


class Page(HTMLParser):
    """A rendered page, parsed: elements by id, cells carrying data-* attributes, list items, text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.html = text
        self.elements: list[dict[str, Any]] = []  # {"tag", "attrs", "text"} in document order
        self._open: list[dict[str, Any]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(element)
        if tag not in ("img", "br", "meta", "input", "link", "line", "rect", "polyline", "circle"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index]["tag"] == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, **attrs: str) -> list[dict[str, Any]]:
        """Elements whose attributes include these (underscores in names are dashes: data_metric=...)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [el for el in self.elements if all(el["attrs"].get(k) == v for k, v in wanted.items())]

    def by_id(self, element_id: str) -> dict[str, Any]:
        (found,) = self.find(id=element_id)
        return found

    def within(self, element_id: str) -> Page:
        """The page fragment inside the element with this id."""
        match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"', self.html)
        assert match, f"no element with id {element_id!r}"
        tag = match.group(1)
        depth, position = 0, match.start()
        for token in re.finditer(rf"<(/?){tag}\b[^>]*>", self.html[match.start():]):
            depth += -1 if token.group(1) else 1
            if depth == 0:
                return Page(self.html[position : match.start() + token.end()])
        raise AssertionError(f"element {element_id!r} is not closed")

    def text(self) -> str:
        """The visible text (tags dropped, the stylesheet left out), whitespace collapsed."""
        body = re.sub(r"<style>.*?</style>", " ", self.html, flags=re.S)
        return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip()


def get_page(client, path: str, status: int = 200) -> Page:
    """A page of the Models app through a FastAPI TestClient, checked to be HTML with the status expected."""
    response = client.get(path)
    assert response.status_code == status, response.text[-3000:]
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def slow_spec(name: str = "slow-tuned") -> str:
    """specs/iris-tuned.yaml grown to the schema's limits (200 layers, 32 tuned paths of 100 choices each,
    about 24 KB): checking it validates the spec once per choice, a minute or more of CPU (adversarial
    finding 4 of issue 17: 73 s to lint, 90 s per load of the Models page)."""
    text = (SPECS / "iris-tuned.yaml").read_text().replace("name: iris-tuned", f"name: {name}")
    layers = "\n".join("    - dense: {units: 16, activation: relu}" for _ in range(199))  # and the output layer: 200
    values = ", ".join(str(i) for i in range(1, 101))
    space = "\n".join(f"    model.layers[{i}].dense.units: {{choice: [{values}]}}" for i in range(32))
    text = text.replace("    - dense: {units: 16, activation: relu}\n", layers + "\n")
    old_space = "    training.optimizer.learning_rate: {log_uniform: [1.0e-3, 5.0e-2]}\n    model.layers[0].dense.units: {choice: [8, 16, 32]}"
    assert old_space in text
    return text.replace(old_space, space)
