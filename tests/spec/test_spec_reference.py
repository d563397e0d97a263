"""The README's spec reference is generated from the schema; this fails when the two drift apart."""

from __future__ import annotations

import json

from tests.fixtures.paths import REPO, SPECS

from mlspec.spec.reference import BEGIN, END, markdown
from mlspec.spec.schema import load_schema


def test_readme_reference_matches_the_schema():
    readme = (REPO / "README.md").read_text()
    assert BEGIN in readme and END in readme, "README.md lost its generated spec reference markers"
    current = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert current == markdown().strip(), "README spec reference is stale: regenerate it with `mlspec schema --markdown`"


def test_every_property_has_a_description_default_and_example():
    missing = []

    def walk(node, path):
        for key, prop in node.get("properties", {}).items():
            here = f"{path}.{key}" if path else key
            required = key in node.get("required", [])
            moved = prop.get("deprecated", False)  # a key that moved: it must not fill a default where it was
            # x-default: shown, never filled (an absent `rollout` stays absent, so older specs keep their spec_hash)
            defaulted = "default" in prop or "x-default" in prop
            if "description" not in prop or "examples" not in prop or (not defaulted and not required and not moved):
                missing.append(here)
            if moved:
                continue
            walk(prop, here)
            for branch in prop.get("oneOf", []):
                walk(branch, here)
            items = prop.get("items", {})
            for branch in items.get("oneOf", []):
                walk(branch, f"{here}[]")

    schema = load_schema()
    walk(schema, "")
    assert missing == []
    assert schema["$id"].endswith("/v1.json") and schema["additionalProperties"] is False
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_example_specs_point_editors_at_the_schema():
    for path in SPECS.glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../schemas/model-spec.schema.json"), path


def test_pre_commit_hook_runs_mlspec_lint():
    import yaml

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "mlspec-lint" and hook["entry"] == "mlspec lint"
    assert json.loads(json.dumps(hook))["language"] == "python"
