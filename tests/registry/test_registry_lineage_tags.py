"""registry.base.lineage_tags / lineage_from_tags: lineage.json as registry tags, every value within the tag limit
MLflow sets, the JSON ones still parsing when a long file list or many drop reasons are cut short."""

from __future__ import annotations

import json

from mlspec.registry.base import TAG_VALUE_LIMIT, lineage_from_tags, lineage_tags


def test_a_long_file_list_is_cut_to_fit_a_tag_and_counts_the_rest():
    files = [{"uri": f"s3://raw/cars/part-{i:05d}.csv", "sha256": f"{i:064x}", "etag": None, "version_id": None} for i in range(100)]
    tags = lineage_tags({"digest": "sha256:" + "1" * 64, "files": files + [{"more": 250}]})
    text = tags["mlspec.data.files"]
    assert len(text) <= TAG_VALUE_LIMIT
    listed = json.loads(text)
    assert listed[:-1] == files[: len(listed) - 1] and len(listed) > 10
    assert listed[-1] == {"more": 250 + 100 - (len(listed) - 1)}
    assert lineage_from_tags(tags)["files"] == listed


def test_many_drop_reasons_are_summed_beyond_ten():
    dropped = {f"missing in column_{i} (drop_row)": 100 - i for i in range(30)}
    tags = lineage_tags({"rows": {"read": 5000, "dropped": dropped, "train": 2000}})
    rows = json.loads(tags["mlspec.data.rows"])
    assert len(rows["dropped"]) == 11 and rows["dropped"]["other reasons"] == sum(100 - i for i in range(10, 30))
    assert rows["dropped"]["missing in column_0 (drop_row)"] == 100 and rows["train"] == 2000


def test_no_lineage_no_tags_and_no_tags_no_lineage():
    assert lineage_tags({}) == {}
    assert lineage_from_tags({"data_source": "builtin:iris", "mlspec.data.rows": "not json"}) == {}


def test_a_run_without_a_reference_records_its_outcome_and_no_drift():
    tags = lineage_tags({"digest": "sha256:ab", "reference_version": None,
                         "validation": {"outcome": "no_reference", "drifted_columns": [], "schema_problems": [], "accepted_by": None}})
    assert tags == {"mlspec.data.digest": "sha256:ab", "mlspec.validation.outcome": "no_reference", "mlspec.validation.drifted": ""}
    assert lineage_from_tags(tags) == {"digest": "sha256:ab", "validation": {"outcome": "no_reference", "drifted_columns": []}}
