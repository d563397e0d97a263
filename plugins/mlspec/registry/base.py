"""The model-registry interface: MLflow (embedded or server) and Kubeflow Model Registry implement it."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlspec.inference_protocol import numpy_dtype
from mlspec.vocabulary import ROLLOUT_COMMANDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrationRequest:
    """Everything a registry records about one published model version."""

    model_name: str  # the spec's metadata.name
    version: int  # the store's version number (the folder under <storage.uri>/<name>/)
    source_uri: str  # the published version folder
    model_uri: str  # <source_uri>/model.onnx
    metrics: dict[str, float]  # test metrics
    data_source: str
    spec_hash: str
    dag_id: str
    run_id: str
    onnx_opset: int
    framework: str = ""  # model.framework; "" where a caller (a test) does not say
    task: str = "classification"
    input_schema: dict = field(default_factory=dict)  # input_schema.json: features with statistics
    output_schema: dict = field(default_factory=dict)  # output_schema.json: outputs and class names
    description: str = ""
    owner: str = ""
    storage_connection: str | None = None  # Airflow connection id of the store, for storageKey
    files: dict[str, str] = field(default_factory=dict)  # file name -> sha256
    best_trial: int | None = None  # tuned runs: the index of the trial that won (tag mlspec.best_trial)
    trial_params: dict = field(default_factory=dict)  # tuned runs: the winning trial's {spec path: value}
    lineage: dict = field(default_factory=dict)  # the version's lineage.json ({} where none was published)

    def mlflow_signature(self) -> dict[str, str]:
        """The model's signature in MLflow's own format (ModelSignature.to_dict()), built from the
        schemas without importing MLflow: {"inputs": json, "outputs": json} of tensor specs."""
        import json

        def tensors(items: list[dict]) -> str:
            return json.dumps(
                [
                    {"type": "tensor", "name": t["name"], "tensor-spec": {"dtype": numpy_dtype(t["datatype"]), "shape": t["shape"]}}
                    for t in items
                ]
            )

        if not self.input_schema or not self.output_schema:
            return {}
        inputs = self.input_schema.get("columns") or [self.input_schema]  # a table model: one input per column
        return {"inputs": tensors(inputs), "outputs": tensors(self.output_schema.get("outputs", []))}

    def input_example(self) -> list[float] | dict[str, Any]:
        """One row a client can send. A table model's is its first published example row, a real test row
        ({column: value}; a row without gaps when there is one); any other model's is each feature's training
        mean (no training sample leaks out)."""
        rows = self.input_schema.get("example") or []
        if rows:
            return next((row for row in rows if None not in row.values()), rows[0])
        return [feature["mean"] for feature in self.input_schema.get("features", [])]


@dataclass(frozen=True)
class RegistryEntry:
    backend: str  # "mlflow" | "kubeflow"
    model_name: str
    version: int  # the store's version number
    registry_version: str  # the registry's own id/number for that version
    url: str = ""  # where a human can look at it
    created: bool = True  # False when an earlier try had already registered it

    def to_xcom(self) -> dict:
        return {
            "backend": self.backend,
            "model_name": self.model_name,
            "version": self.version,
            "registry_version": self.registry_version,
            "url": self.url,
            "created": self.created,
        }


# The state of each registered version, the registry's record of where it stands.
STATES = ("candidate", "production", "archived", "undeployed", "rolled_back", "failed")


@dataclass(frozen=True)
class VersionRecord:
    """What the registry knows of one store version: enough to load, verify and compare it."""

    model_name: str
    version: int  # the store's version number
    source_uri: str  # the published version folder
    files: dict[str, str]  # file name -> sha256, from the manifest
    metrics: dict[str, float]  # test metrics at registration
    run_id: str  # the DAG run that made it
    state: str  # one of STATES
    # What else a registry keeps of the version ("" / {} / None where it keeps none of it):
    registry_version: str = ""  # the registry's own id or number for it
    created_ms: int | None = None  # when it was registered, ms since the epoch
    dag_id: str = ""
    data_source: str = ""
    spec_hash: str = ""
    framework: str = ""
    task: str = ""
    champion: dict[str, str] = field(default_factory=dict)  # the champion gate's outcome: decision, metric, ...
    deployment: dict[str, str] = field(default_factory=dict)  # the last deployment: platform, endpoint_url, outcome
    tracking_run: str = ""  # the tracking run it is registered from (the training run, when tracked)
    best_trial: str = ""  # tuned runs: the winning trial's index
    best_params: dict = field(default_factory=dict)  # and its values, {spec path: value}
    lineage: dict = field(default_factory=dict)  # the data it was trained on, from LINEAGE_TAGS (lineage_from_tags)
    rollout: dict = field(default_factory=dict)  # its rollout record (ROLLOUT_TAG; mlspec.rollout.record reads it)
    rollout_command: dict = field(default_factory=dict)  # the last pause|resume|abort sent (ROLLOUT_COMMAND_TAG)


# A version's data lineage (its lineage.json) as registry tags: MLflow model-version tags and Kubeflow
# ModelVersion customProperties (string values) under the same keys. lineage.json field -> tag.
LINEAGE_TAGS = {
    "digest": "mlspec.data.digest",  # "sha256:<hex>" of the prepared data set
    "source": "mlspec.data.source",  # data.source as rendered for the run
    "query": "mlspec.data.query",  # data.query as rendered (sql:// sources)
    "rows": "mlspec.data.rows",  # JSON: read, dropped {why: rows}, and each split's rows
    "files": "mlspec.data.files",  # JSON: the files read (uri, sha256, etag, version_id), then {"more": n}
}
VALIDATION_TAGS = {
    "outcome": "mlspec.validation.outcome",  # validate_data's outcome (passed, warned, accepted, ...)
    "reference_version": "mlspec.validation.reference_version",  # the production version drift was measured against
    "drifted": "mlspec.validation.drifted",  # the drifted columns, a comma list ("" when none)
}
TAG_VALUE_LIMIT = 4000  # characters: every registry takes a value this long (MLflow caps tags at 5000)
MAX_DROP_REASONS = 10  # rows dropped for more reasons than this are summed under "other reasons"


def lineage_tags(lineage: Mapping[str, Any]) -> dict[str, str]:
    """The registry tags of a version's lineage.json ({} without one); every value fits TAG_VALUE_LIMIT, the JSON
    ones still parse (the file list is cut short and ends {"more": n})."""
    tags: dict[str, str] = {}
    for part in ("digest", "source", "query"):
        if lineage.get(part):
            tags[LINEAGE_TAGS[part]] = str(lineage[part])[:TAG_VALUE_LIMIT]
    if lineage.get("rows"):
        tags[LINEAGE_TAGS["rows"]] = _compact_json(_rows_that_fit(lineage["rows"]))
    if lineage.get("files") is not None:
        tags[LINEAGE_TAGS["files"]] = _files_that_fit(list(lineage["files"]))
    validation = lineage.get("validation") or {}
    if validation.get("outcome"):
        tags[VALIDATION_TAGS["outcome"]] = str(validation["outcome"])
    if lineage.get("reference_version") is not None:
        tags[VALIDATION_TAGS["reference_version"]] = str(int(lineage["reference_version"]))
    if validation:
        tags[VALIDATION_TAGS["drifted"]] = ",".join(str(c) for c in validation.get("drifted_columns") or [])[:TAG_VALUE_LIMIT]
    return tags


def lineage_from_tags(tags: Mapping[str, Any]) -> dict:
    """A version's lineage as its registry tags record it, shaped as lineage.json (digest, source, query, rows,
    files, reference_version, validation: {outcome, drifted_columns}); {} for a version registered without."""
    lineage: dict[str, Any] = {}
    for part in ("digest", "source", "query"):
        if tags.get(LINEAGE_TAGS[part]):
            lineage[part] = str(tags[LINEAGE_TAGS[part]])
    for part, kind in (("rows", dict), ("files", list)):
        try:
            value = json.loads(tags.get(LINEAGE_TAGS[part]) or "null")
        except (TypeError, ValueError):
            value = None
        if isinstance(value, kind):
            lineage[part] = value
    reference = str(tags.get(VALIDATION_TAGS["reference_version"]) or "")
    if reference.isdigit():
        lineage["reference_version"] = int(reference)
    if VALIDATION_TAGS["outcome"] in tags or VALIDATION_TAGS["drifted"] in tags:
        drifted = str(tags.get(VALIDATION_TAGS["drifted"]) or "")
        lineage["validation"] = {
            "outcome": str(tags.get(VALIDATION_TAGS["outcome"]) or "") or None,
            "drifted_columns": [c for c in drifted.split(",") if c],
        }
    return lineage


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _rows_that_fit(rows: Mapping[str, Any]) -> dict:
    """rows with at most MAX_DROP_REASONS reasons for dropped rows (the most rows first, each reason at most 200
    characters; the rest summed under "other reasons"), which keeps its JSON well under TAG_VALUE_LIMIT."""
    dropped = sorted((rows.get("dropped") or {}).items(), key=lambda item: -int(item[1]))
    kept = {str(why)[:200]: int(n) for why, n in dropped[:MAX_DROP_REASONS]}
    if len(dropped) > MAX_DROP_REASONS:
        kept["other reasons"] = sum(int(n) for _, n in dropped[MAX_DROP_REASONS:])
    return {**rows, "dropped": kept} if "dropped" in rows else dict(rows)


def _files_that_fit(files: list) -> str:
    """The files list as JSON of at most TAG_VALUE_LIMIT characters: the first files that fit, then
    {"more": n} counting the rest (and any "more" the list already ended with)."""
    listed = [f for f in files if isinstance(f, Mapping) and "uri" in f]
    more = sum(int(f.get("more") or 0) for f in files if isinstance(f, Mapping) and "uri" not in f)
    keep = len(listed)
    while True:
        rest = more + len(listed) - keep
        text = _compact_json(listed[:keep] + ([{"more": rest}] if rest else []))
        if len(text) <= TAG_VALUE_LIMIT or keep == 0:
            return text
        keep = min(keep - 1, keep * TAG_VALUE_LIMIT // len(text))


# A candidate version's rollout (issue 16), MLflow model-version tags and Kubeflow ModelVersion customProperties:
# the whole record as JSON (mlspec.rollout.record writes it, each write replaces it), and the last command a person
# sent ({"command": pause|resume|abort, "actor", "at"}), which the rollout reads at its next poll.
ROLLOUT_TAG = "mlspec.rollout"
ROLLOUT_COMMAND_TAG = "mlspec.rollout.command"
ROLLOUT_TAG_LIMIT = 5000  # characters: older MLflow servers cap a model-version tag value at 5,000
ROLLOUT_TEXT_LIMIT = 300  # a long text in a record cut to fit is cut to this many characters


def rollout_json(record: Mapping[str, Any]) -> str:
    """A rollout record as compact JSON of at most ROLLOUT_TAG_LIMIT characters. What is cut to fit, in order: the
    oldest steps' `checks` and `message` (such a step keeps `"cut": true`), then long texts anywhere but `state`,
    then the oldest steps themselves (counted in `"steps_cut"`). The state, versions and times always stay."""
    record = json.loads(_compact_json(record))
    text = _compact_json(record)
    steps = record.get("steps") if isinstance(record.get("steps"), list) else []
    for step in steps:
        if len(text) <= ROLLOUT_TAG_LIMIT:
            return text
        if isinstance(step, dict) and ("checks" in step or "message" in step):
            step.pop("checks", None)
            step.pop("message", None)
            step["cut"] = True
            text = _compact_json(record)
    if len(text) > ROLLOUT_TAG_LIMIT:
        record = {key: value if key == "state" else _texts_cut(value) for key, value in record.items()}
        text = _compact_json(record)
    while len(text) > ROLLOUT_TAG_LIMIT and record.get("steps"):
        record["steps"] = record["steps"][1:]
        record["steps_cut"] = int(record.get("steps_cut") or 0) + 1
        text = _compact_json(record)
    if len(text) > ROLLOUT_TAG_LIMIT:
        raise ValueError(f"a rollout record does not fit {ROLLOUT_TAG_LIMIT} characters even without its steps")
    return text


def _texts_cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > ROLLOUT_TEXT_LIMIT:
        return value[: ROLLOUT_TEXT_LIMIT - 3] + "..."
    if isinstance(value, dict):
        return {str(k)[:ROLLOUT_TEXT_LIMIT]: _texts_cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_texts_cut(v) for v in value]
    return value


def rollout_command_json(command: Mapping[str, Any]) -> str:
    """A rollout command as stored: {"command": one of ROLLOUT_COMMANDS, "actor", "at"} (texts cut short)."""
    if command.get("command") not in ROLLOUT_COMMANDS:
        raise ValueError(f"unknown rollout command {command.get('command')!r}; one of {', '.join(ROLLOUT_COMMANDS)}")
    return _compact_json(_texts_cut(dict(command)))


def json_object_tag(tags: Mapping[str, Any], key: str, where: str) -> dict:
    """The JSON object a tag holds; {} when absent, and {} with a warning when it is not a JSON object (a
    hand-edited or cut value must not break the page or the rollout that reads it)."""
    raw = tags.get(key)
    if raw in (None, ""):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, dict):
        log.warning("%s: tag %s is not a JSON object; read as empty: %.200r", where, key, raw)
        return {}
    return value


AUDIT_ACTIONS = ("promote", "deploy", "rollback", "undeploy", "auto_rollback")
# How each action reads to people (Models page, model card, `mlspec history`): "<words> by <actor>". The
# codes above stay in the data (the audit JSON, `--json`, data-action attributes); every action has words.
ACTION_WORDS = {
    "promote": "promoted",
    "deploy": "deployed",
    "rollback": "rolled back",
    "undeploy": "undeployed",
    "auto_rollback": "restored automatically",
}


def action_words(action: str) -> str:
    """The words for an audit action; an action this version does not know (a newer writer's) as it is."""
    return ACTION_WORDS.get(action, action)


@dataclass(frozen=True)
class ProductionChange:
    """One change of a model's production version, as the audit trail records it."""

    at: str  # ISO-8601 UTC, seconds
    actor: str  # the Airflow user who triggered the run, "schedule", or "cli:<os user>"
    action: str  # one of AUDIT_ACTIONS
    from_version: int | None
    to_version: int | None
    reason: str
    run_id: str = ""  # the Airflow DAG run id ("" from the CLI)
    run_url: str = ""  # link to that run in the Airflow UI ("" when none)

    def to_dict(self) -> dict:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "reason": self.reason,
            "run_id": self.run_id,
            "run_url": self.run_url,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ProductionChange:
        def version(value) -> int | None:
            return None if value is None or value == "" else int(value)

        return cls(
            at=str(d.get("at", "")),
            actor=str(d.get("actor", "")),
            action=str(d.get("action", "")),
            from_version=version(d.get("from_version")),
            to_version=version(d.get("to_version")),
            reason=str(d.get("reason", "")),
            run_id=str(d.get("run_id", "") or ""),
            run_url=str(d.get("run_url", "") or ""),
        )


def utc_now() -> str:
    """Now as the audit trail writes it: ISO-8601 UTC, seconds (2026-12-07T03:45:00Z)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


AUDIT_KEEP = 200  # the registry keeps the newest 200 production changes of each model


def audit_entry_json(change: ProductionChange) -> str:
    """The change as stored on a registry: compact JSON of at most about 3,000 characters (the reason,
    actor and run fields cut short), so it fits MLflow's tag and any string property."""
    if change.action not in AUDIT_ACTIONS:
        known = ", ".join(AUDIT_ACTIONS)
        raise ValueError(f"unknown production change action {change.action!r}; one of {known}")

    def cut(text: str, limit: int) -> str:
        return text if len(text) <= limit else text[: limit - 3] + "..."

    d = change.to_dict()
    for key, limit in (("reason", 1200), ("actor", 200), ("run_id", 250), ("run_url", 1000), ("at", 40)):
        d[key] = cut(str(d[key] or ""), limit)
    text = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    while len(text) > 3000:  # escaping (quotes, backslashes, control characters) can double a field
        for key in ("reason", "run_url", "actor", "run_id"):
            d[key] = cut(d[key], max(3, len(d[key]) // 2))
        text = json.dumps(d, separators=(",", ":"), ensure_ascii=False)
    return text


def audit_key_suffix(keys: list[str], prefix: str) -> str:
    """The next entry's key after `prefix`: a zero-padded sequence number above every existing one, then a
    random part so that two writers racing for one number do not pick the same key ("000007-3fa2c1").

    That keeps both entries only where each entry is written on its own (MLflow: one tag per request).
    Kubeflow replaces the RegisteredModel's whole customProperties map on PATCH, so a racing writer can
    still drop an entry: KubeflowRegistry writes under the model's lock and writes again an entry it does
    not read back."""
    import secrets

    numbers = [int(k[len(prefix):].split("-")[0]) for k in keys if k[len(prefix):].split("-")[0].isdigit()]
    return f"{max(numbers, default=0) + 1:06d}-{secrets.token_hex(3)}"


def audit_order(key: str, prefix: str) -> tuple[int, str]:
    number, _, rest = key[len(prefix):].partition("-")
    return (int(number) if number.isdigit() else 0, rest)


def history_from_changes(changes: list[ProductionChange]) -> list[int]:
    """Production versions in the order they became production (repeats kept: v1 -> v2 -> v1 reads
    [1, 2, 1]); the version production came from in the first change recorded starts the list."""
    history: list[int] = []
    if changes and changes[0].from_version is not None and changes[0].action != "auto_rollback":
        history.append(changes[0].from_version)
    for change in changes:
        if change.to_version is not None and (not history or history[-1] != change.to_version):
            history.append(change.to_version)
    return history


class ModelRegistry(ABC):
    """The record of every published version and of which one is production.

    Production changes only through `set_production`, which remembers the order of production
    versions so that a rollback knows where to go back to.
    """

    backend: str

    @abstractmethod
    def register(self, request: RegistrationRequest) -> RegistryEntry:
        """Register the version; when this run already registered it, return that entry (created=False)."""

    @abstractmethod
    def find(self, model_name: str, version: int) -> RegistryEntry | None:
        """The entry for a store version, or None."""

    @abstractmethod
    def record_deployment(self, model_name: str, version: int, deployment: dict, outcome: str) -> None:
        """Record where the version was deployed and what happened; production never moves here (that is
        `set_production`'s, an explicit step of the release service).

        `outcome` is one of "deployed", "smoke_test_passed", "rolled_back", "failed" (the last two also
        set the version's state); `deployment` holds at least platform, endpoint_url, served_model_name
        and an optional message.
        """

    @abstractmethod
    def production_version(self, model_name: str) -> int | None:
        """The store version that is production, or None (nothing promoted yet, or undeployed)."""

    @abstractmethod
    def version_record(self, model_name: str, version: int) -> VersionRecord | None:
        """The registry's record of a store version, or None when it is not registered."""

    @abstractmethod
    def latest_version(self, model_name: str) -> int | None:
        """The highest store version the registry knows: the store never numbers a new one at or below it."""

    def list_versions(self, model_name: str) -> list[VersionRecord]:
        """Every version the registry knows, in ascending order (a registry that can list them in one call
        does so)."""
        records = (self.version_record(model_name, n) for n in range(1, (self.latest_version(model_name) or 0) + 1))
        return [record for record in records if record is not None]

    @abstractmethod
    def set_production(self, model_name: str, version: int | None, reason: str) -> None:
        """Make `version` production (None: nothing is), archiving the one before; remembered in order."""

    @abstractmethod
    def production_history(self, model_name: str) -> list[int]:
        """Store versions that were production, oldest first (the current one last, when there is one)."""

    @abstractmethod
    def set_state(self, model_name: str, version: int, state: str, details: dict[str, str] | None = None) -> None:
        """Record a version's state (STATES) with details, e.g. both scores of a champion comparison."""

    @abstractmethod
    def record_production_change(self, model_name: str, change: ProductionChange) -> None:
        """Append one change of production to the model's audit trail (kept on the registry)."""

    @abstractmethod
    def production_changes(self, model_name: str) -> list[ProductionChange]:
        """The model's audit trail of production changes, oldest first ([] when none is recorded)."""

    @abstractmethod
    def record_rollout(self, model_name: str, version: int, record: dict) -> None:
        """Replace the version's rollout record (ROLLOUT_TAG: rollout_json(record), cut to fit)."""

    @abstractmethod
    def set_rollout_command(self, model_name: str, version: int, command: dict) -> None:
        """Leave a command for the version's running rollout (ROLLOUT_COMMAND_TAG: rollout_command_json)."""
