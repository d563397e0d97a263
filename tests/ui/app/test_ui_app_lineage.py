"""The Models page shows the data a version was trained on, its data checks and its changed classes (issue 14),
read from the version's published lineage.json, drift.json and drift.png and its champion tags; a version
published before issue 14 says it has none. A real store and embedded MLflow registry, no DAG run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.ui.app.ui_app_testkit import Page, get_page
from tests.ui.app.ui_lineage_testkit import DIGEST, HOSTILE_CATEGORY, LINEAGE, NAME, PNG, publish_versions

from mlspec.ui import data, pages


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Iterator[object]:
    home = tmp_path_factory.mktemp("ui-lineage-home")
    specs = tmp_path_factory.mktemp("ui-lineage-specs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLSPEC_HOME", str(home))
        patch.setenv("MLSPEC_SPECS_DIR", str(specs))
        patch.setenv("MLSPEC_SPEC_CACHE", str(home / "spec-cache"))
        patch.setenv("MLSPEC_SERVER_URL", "http://127.0.0.1:9")
        patch.setattr(data, "_served_version", lambda spec, timeout_s: 2)
        yield publish_versions(specs)


@pytest.fixture(scope="module")
def client(spec) -> Iterator[object]:
    from fastapi.testclient import TestClient

    from mlspec.ui.app import create_app

    with TestClient(create_app(timeout_s=20)) as test_client:
        yield test_client


def test_a_version_card_reads_the_published_lineage_drift_and_plot(spec):
    card = data.version_card(spec, 2)
    assert card.lineage["digest"] == DIGEST and card.lineage["rows"]["train"] == 240
    assert [row["column"] for row in card.drift["rows"]] == ["body_mass_g", "flipper_length_mm", "island"]
    assert card.has_drift_plot and card.lineage_recorded
    assert "drift.png" not in card.plots  # shown with the data checks, not with evaluate's plots
    assert card.info.champion["classes_added"] == "Chinstrap"
    assert card.info.lineage["digest"] == DIGEST and card.info.lineage["validation"]["drifted_columns"] == ["body_mass_g"]
    older = data.version_card(spec, 1)
    assert older.lineage is None and older.drift is None and older.lineage_recorded is False and not older.has_drift_plot


def test_the_version_page_shows_lineage_checks_and_classes_added(client):
    page = get_page(client, f"/models/{NAME}/versions/2")
    assert not page.find(id="backend-problems")
    facts = page.within("data-lineage")
    assert facts.find(data_field="digest")[0]["text"] == DIGEST
    assert facts.find(data_field="source")[0]["text"] == "file:///data/penguins_stream.csv"
    assert facts.find(data_field="rows")[0]["text"] == "344 read, 2 dropped (no label: 2); train 240, validation 34, test 68"
    assert facts.find(data_field="split")[0]["text"] == "hash of island, bill_length_mm (validation 0.1, test 0.2)"
    checks = page.within("data-checks")
    assert checks.find(data_field="outcome")[0]["text"].startswith("warned: drift or schema problems were found")
    assert checks.find(data_field="reference")[0]["text"] == "production version 1 (270 rows)"
    table = page.within("drift")
    rows = [r for r in table.find() if r["tag"] == "tr" and "data-column" in r["attrs"]]
    assert [(r["attrs"]["data-column"], r["attrs"]["class"]) for r in rows] == [
        ("body_mass_g", "drifted"), ("flipper_length_mm", "steady"), ("island", "drifted")]
    assert "body_mass_g drift ks 0.00012 0.05 yes" in " ".join(table.text().split())
    (plot,) = page.find(id="drift-plot")
    assert plot["attrs"]["src"] == f"/models/{NAME}/versions/2/files/drift.png"
    assert [img["attrs"]["data-file"] for img in page.find() if img["tag"] == "img" and img["attrs"].get("id") != "drift-plot"] == []
    assert "classes added: Chinstrap" in page.within("class-changes").text()
    assert "scored on: this run's test split" in page.within("class-changes").text()
    # A category name from the data is text on the page.
    assert HOSTILE_CATEGORY in page.within("schema-problems").text() and HOSTILE_CATEGORY not in page.html
    image = client.get(plot["attrs"]["src"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and image.content == PNG


def test_a_version_published_before_lineage_was_recorded_says_so(client):
    page = get_page(client, f"/models/{NAME}/versions/1")
    assert "no lineage recorded (published before mlspec recorded it)" in page.within("data-lineage").text()
    assert not page.find(id="data-checks") and not page.find(id="drift") and not page.find(id="class-changes")


def test_pages_without_a_manifest_say_nothing_of_lineage():
    card = data.VersionCard(data.ModelStatus(spec=None), 3, None)
    assert card.lineage_recorded is None
    assert pages.data_section(card) == "" and pages.data_checks_section(card, "") == ""


def test_a_version_whose_store_files_are_gone_shows_the_lineage_its_registry_tags_record(spec):
    """The store pruned or lost the version's files; its registry tags still say which data trained it."""
    from mlspec.registry.base import lineage_from_tags, lineage_tags

    status = data.ModelStatus(spec, store_ok=True, registry_ok=True)
    info = data.VersionInfo(2, registered=True, in_store=False, lineage=lineage_from_tags(lineage_tags(LINEAGE)))
    status.versions = [info]
    card = data.VersionCard(status, 2, info)
    page = Page(pages.data_section(card) + pages.data_checks_section(card, ""))
    assert "As the registry's tags record it" in page.within("lineage-from").text()
    assert page.find(data_field="digest")[0]["text"] == DIGEST
    assert page.find(data_field="rows")[0]["text"] == "344 read, 2 dropped (no label: 2); train 240, validation 34, test 68"
    assert page.find(data_field="outcome")[0]["text"].startswith("warned:")
    assert page.find(data_field="reference")[0]["text"] == "production version 1"
    assert page.find(data_field="drifted columns")[0]["text"] == "body_mass_g"
    assert not page.find(id="drift")  # the table is in drift.json only


def test_the_versions_table_says_which_data_trained_each_version(client):
    versions = get_page(client, f"/models/{NAME}").within("versions")
    shown = [row["attrs"]["data-version"] for row in versions.find() if row["tag"] == "tr" and "data-version" in row["attrs"]]
    data_cells = [cell["text"] for cell in versions.find(data_field="data")]
    assert dict(zip(shown, data_cells, strict=True)) == {"2": f"{DIGEST.removeprefix('sha256:')[:12]} · warned (body_mass_g)", "1": "—"}


def test_a_store_that_stops_answering_is_asked_for_no_further_file(spec, monkeypatch):
    """The card reads five published JSON files one after another, each bounded by the page's timeout: a store
    that hangs made the page wait five timeouts. After the first file it does not answer, the rest are named as not
    read and not asked for."""
    import threading
    import time

    from mlspec.storage.file import FileStore

    asked, release = [], threading.Event()
    read_bytes = FileStore.read_bytes

    def hangs_on_json(store, key):
        if key.endswith(".json") and not key.endswith("manifest.json"):
            asked.append(key.rsplit("/", 1)[-1])
            release.wait(5)
        return read_bytes(store, key)

    monkeypatch.setattr(FileStore, "read_bytes", hangs_on_json)
    started = time.monotonic()
    try:
        card = data.version_card(spec, 2, timeout_s=0.3)
    finally:
        release.set()
    assert asked == ["metrics.json"] and time.monotonic() - started < 3
    (problem,) = [p for p in card.problems if p.startswith("metrics.json")]
    assert problem == "metrics.json: the store did not answer within 0.3 s; not read: input_schema.json, lineage.json, drift.json"
