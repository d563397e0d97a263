"""A version's data lineage on the Kubeflow Model Registry: string customProperties under the same keys as MLflow's
tags (held to the vendored contract by the fake), read back into VersionRecord.lineage."""

from __future__ import annotations

from kubeflow_testkit import TOKEN

from mlspec.registry.kubeflow import KubeflowRegistry

LINEAGE = {
    "source": "s3://raw/cars/2026-12-07.csv",
    "query": None,
    "files": [{"uri": "s3://raw/cars/2026-12-07.csv", "sha256": "ab" * 32, "etag": '"9b2cf535f27731c974343645a3985328"',
               "version_id": "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"}],
    "digest": "sha256:" + "0f" * 32,
    "rows": {"read": 406, "dropped": {"no label": 6}, "train": 280, "validation": 40, "test": 80},
    "split": {"method": "hash", "key": ["Name", "Year"], "validation": 0.1, "test": 0.2, "seed": 42},
    "reference_version": 2,
    "validation": {"outcome": "accepted", "drifted_columns": ["Weight_in_lbs", "Horsepower"],
                   "schema_problems": [], "accepted_by": "alice"},
}


def test_lineage_is_recorded_as_string_properties_and_read_back(fake, make_request) -> None:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(make_request(lineage=LINEAGE, data_source=LINEAGE["source"]))

    [version] = fake.entities("ModelVersion")
    properties = version["customProperties"]
    lineage_keys = [key for key in properties if key.startswith(("mlspec.data.", "mlspec.validation."))]
    assert sorted(lineage_keys) == sorted([
        "mlspec.data.digest", "mlspec.data.source", "mlspec.data.rows", "mlspec.data.files",
        "mlspec.validation.outcome", "mlspec.validation.reference_version", "mlspec.validation.drifted"])
    assert {properties[key]["metadataType"] for key in lineage_keys} == {"MetadataStringValue"}
    assert properties["mlspec.validation.drifted"]["string_value"] == "Weight_in_lbs,Horsepower"

    record = registry.version_record("digits", 3)
    assert record.data_source == LINEAGE["source"]
    assert record.lineage == {
        "source": LINEAGE["source"], "files": LINEAGE["files"], "digest": LINEAGE["digest"], "rows": LINEAGE["rows"],
        "reference_version": 2, "validation": {"outcome": "accepted", "drifted_columns": ["Weight_in_lbs", "Horsepower"]},
    }


def test_a_version_registered_without_lineage_reads_back_none(fake, make_request) -> None:
    registry = KubeflowRegistry.from_url(fake.url, token=TOKEN)
    registry.register(make_request())
    assert registry.version_record("digits", 3).lineage == {}
