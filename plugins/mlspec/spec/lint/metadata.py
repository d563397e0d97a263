"""metadata: the spec's name names the DAG, the registered model and the InferenceService."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.yaml_loader import LoadedYaml

# Matched with fullmatch: `$` would also match before a trailing newline ("iris\n" passed).
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_name(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    name = spec["metadata"]["name"]
    if not DNS_1123_LABEL.fullmatch(name):
        yield doc.problem(
            ("metadata", "name"),
            f"{quote(name)} is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a "
            "letter or digit); it names the DAG, the registered model and the InferenceService",
        )
