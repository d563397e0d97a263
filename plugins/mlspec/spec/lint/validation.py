"""validation: the data checks the spec asks for can run on its data (the schema checks the values)."""

from __future__ import annotations

import math
from collections.abc import Iterator

from mlspec.spec.errors import SpecProblem
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.vocabulary import DATA_SOURCES, MAX_CHECKED_FEATURES


def check_validation(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """A `validation` section on a named data set whose samples are too wide to check column by column (an
    image set) would never act: validate_data passes such data as "skipped"."""
    if "validation" not in doc.data:
        return  # the defaults: nothing the author expects of this data
    source = spec["data"]["source"]
    known = DATA_SOURCES.get(source)
    if known is None:
        return
    features = math.prod(known.shape)
    if features > MAX_CHECKED_FEATURES:
        yield doc.problem(
            ("validation",),
            f"validate_data does not check {source}: its samples have {features:,} features, more than the "
            f"{MAX_CHECKED_FEATURES} it checks column by column, so these settings never act; remove the "
            "section",
            at_key=True,
            severity="warning",
        )
