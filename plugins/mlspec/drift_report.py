"""`mlspec drift SPEC [--since 24h] [--version N] [--out DIR]`: live inputs against the training data.

The rows the model server logged for a version (mlspec.request_logs; the spec's `serving.log_requests`) since
a time are profiled and compared with the version's published profile.json, with the same tests, thresholds
and share as validate_data (mlspec.ml.drift.compare, the spec's `validation.drift`). The table is printed, and
drift.json and drift.png are written to a folder the command names. Drift here is any drifted column or schema
problem (a category the training data never had, a rise in gaps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlspec.errors import MlspecError
from mlspec.home import mlspec_home
from mlspec.ml.columns import Column
from mlspec.registry.reading import open_for_reading
from mlspec.release import published_json
from mlspec.request_logs import LOG_COLUMNS, LOGGED_OUTPUTS, feature_columns, read_since
from mlspec.storage import open_store
from mlspec.vocabulary import DRIFT_FILE, DRIFT_PLOT, MAX_CHECKED_FEATURES, PROFILE_FILE

NO_DRIFT, DRIFT, NO_ROWS = 0, 1, 2  # the command's exit codes; NO_ROWS also for an error
LIVE_OUTCOMES = ("passed", "drifted")  # drift.json's "outcome" for live data
REPORT_FOLDER = "drift"  # under MLSPEC_HOME: <model>/v<version>-<UTC time>/


class DriftCheckError(MlspecError):
    """The live data cannot be checked; the message says why and what to do."""


@dataclass
class LiveDrift:
    """What `mlspec drift` found: its exit code, the lines to print and where the files went."""

    code: int
    lines: list[str] = field(default_factory=list)
    folder: Path | None = None


def live_drift(
    spec: Any,
    since: datetime,
    *,
    version: int | None = None,
    out: Path | None = None,
    spec_file: str = "<spec>",
) -> LiveDrift:
    """Compare `version`'s (default: production's) logged inputs since `since` with its training profile."""
    from mlspec.ml import drift as ml_drift  # pandas and scipy: only when the command runs

    registry = open_for_reading(spec.registry.backend, spec.registry.connection)
    if version is None:
        version = registry.production_version(spec.name)
        if version is None:
            raise DriftCheckError(
                f"{spec.name} has no production version; name the version whose requests to check: "
                "--version N"
            )
    record = registry.version_record(spec.name, version)
    if record is None:
        raise DriftCheckError(
            f"the registry has no version {version} of {spec.name}; `mlspec status` names the versions"
        )
    store = open_store(spec.storage.uri, spec.storage.connection)
    profile = published_json(store, record, PROFILE_FILE)
    if not profile:
        raise DriftCheckError(
            f"{spec.name} version {version} was published without {PROFILE_FILE}, so there is nothing to "
            "compare its requests with: it was trained before mlspec profiled training data, or on samples "
            f"of more than {MAX_CHECKED_FEATURES} values (images), which are not profiled. A version trained "
            "now on a table or on small arrays has one"
        )
    logged = read_since(store, spec.name, version, since)
    if not len(logged.frame):
        raise NoRows(_no_rows(spec, version, since))
    frame, columns = current_table(logged.frame, profile)
    if not any(column.name in {str(e.get("name")) for e in profile.get("columns", ())} for column in columns):
        raise DriftCheckError(
            f"the {len(frame)} logged rows of {spec.name} version {version} hold none of the columns its "
            f"{PROFILE_FILE} names (a model whose samples have more features than data checks profile logs "
            "none)"
        )
    settings = spec.validation.drift
    report = ml_drift.compare(
        profile,
        frame,
        columns,
        schema="warn",
        threshold=settings.threshold,
        share=settings.share,
        reference_version=version,
    )
    drifted = bool(report.drifted_columns or report.schema_problems)
    drift = report.to_json()
    drift.update(
        outcome=LIVE_OUTCOMES[drifted],
        source={
            "request_log": True,
            "model": spec.name,
            "version": version,
            "since": since.isoformat(),
            "parts": list(logged.parts),
            "parts_left_out": logged.parts_left_out,
        },
    )
    folder = (
        out or mlspec_home() / REPORT_FOLDER / spec.name / f"v{version}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DRIFT_FILE).write_text(json.dumps(drift, indent=2))
    plot_note = _write_plot(folder, drift, profile, frame)
    lines = [
        f"{spec.name} version {version}: {len(frame)} logged rows since {since:%Y-%m-%d %H:%M} UTC "
        f"({len(logged.parts)} part(s)) against its {report.reference_rows} training rows",
    ]
    if logged.parts_left_out:
        lines.append(
            f"  {logged.parts_left_out} older part(s) since then were not read: the newest {len(frame):,} "
            "rows are compared"
        )
    lines += [
        "  (column, check, test, score, threshold, verdict, detail)",
        *(f"  {line}" for line in report.log_lines()),
    ]
    verdict = (
        f"{len(report.drifted_columns)} of {report.columns_compared} columns drifted"
        + (f" ({', '.join(report.drifted_columns)})" if report.drifted_columns else "")
        + f", {len(report.schema_problems)} schema problem(s)"
        + (", the data set drifted" if report.dataset_drift else "")
    )
    lines.append(f"{'DRIFT' if drifted else 'no drift'}: {verdict}")
    lines.append(f"drift.json and drift.png are in {folder}" + (f" ({plot_note})" if plot_note else ""))
    if drifted:
        lines.append(
            "next: look at drift.png; if the live inputs are what the model must now answer, retrain on data "
            f"that holds them (`mlspec run {spec_file}`); if a client sends wrong inputs, fix the client"
        )
    return LiveDrift(DRIFT if drifted else NO_DRIFT, lines, folder)


class NoRows(DriftCheckError):
    """No row was logged for the version in the time asked for."""


def current_table(logged: Any, profile: dict) -> tuple[Any, tuple[Column, ...]]:
    """The logged features as the frame and columns drift.compare takes: the profile's columns (its types)
    that the log holds, then the log's features the profile lacks (numbers or categories by their values)."""
    import pandas as pd

    by_feature = feature_columns(
        logged.drop(columns=[c for c in (*LOG_COLUMNS, *LOGGED_OUTPUTS) if c in logged])
    )
    frame = pd.DataFrame({name: logged[column].to_numpy() for name, column in by_feature.items()})
    known = {str(entry.get("name")): str(entry.get("type")) for entry in profile.get("columns", ())}
    columns = [Column(name, kind) for name, kind in known.items() if name in frame]
    columns += [
        Column(name, "number" if pd.api.types.is_numeric_dtype(frame[name]) else "category")
        for name in frame
        if name not in known
    ]
    return frame, tuple(columns)


def _write_plot(folder: Path, drift: dict, profile: dict, frame: Any) -> str:
    """drift.png; a plot that cannot be drawn is a note, never a failure (drift.json decides)."""
    from mlspec.ml.plots import drift_plot  # matplotlib: only when the command runs

    try:
        (folder / DRIFT_PLOT).write_bytes(
            drift_plot(drift, profile, frame, rows_word="logged rows", label="logged")
        )
    except Exception as exc:  # noqa: BLE001 - the plot is for people
        return f"no plot: {type(exc).__name__}: {exc}"
    return ""


def _no_rows(spec: Any, version: int, since: datetime) -> str:
    return (
        f"no request of {spec.name} version {version} was logged since {since:%Y-%m-%d %H:%M} UTC. Next: set "
        "serving.log_requests in the spec (e.g. {sample: 0.1, max_mb_per_hour: 100}) and deploy, send it "
        "traffic, and wait for the server to write its part (every 60 s); or ask for a longer time: "
        "--since 7d"
    )
