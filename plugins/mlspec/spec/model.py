"""The typed, immutable ModelSpec that the rest of mlspec reads (built from a validated, defaulted dict)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mlspec.deadlines import parse_duration
from mlspec.ml.columns import Column, declared_columns
from mlspec.plain_data import thaw
from mlspec.serving.platforms import platform_named


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Step:
    """One layer or preprocess step: `{dense: {units: 64}}` becomes Step("dense", {...})."""

    kind: str
    params: Any

    @classmethod
    def from_mapping(cls, item: dict) -> Step:
        ((kind, params),) = item.items()
        return cls(kind, _freeze(params))

    def to_mapping(self) -> dict:
        return {self.kind: thaw(self.params)}


@dataclass(frozen=True)
class Metadata:
    name: str
    description: str
    owner: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Split:
    """data.split: the shares of validation and test, and how rows are assigned (mlspec.ml.splits)."""

    validation: float
    test: float
    seed: int  # method random only
    stratify: bool  # method random only
    method: str = "hash"  # hash: a row's split follows from its row id | random: a seeded shuffle
    key: tuple[str, ...] | None = None  # the columns a row id hashes; None: the feature and label columns

    @classmethod
    def from_mapping(cls, split: dict) -> Split:
        key = split.get("key")
        return cls(
            validation=split["validation"],
            test=split["test"],
            seed=split["seed"],
            stratify=split["stratify"],
            method=split.get("method", "hash"),
            key=None if key is None else tuple(key),
        )


_BYTE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def parse_bytes(value: int | str) -> int:
    """data.limits.max_bytes as bytes: an int, or "2GB", "512 MiB", "1.5GiB" (the schema's pattern)."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    unit = text.lstrip("0123456789. ")
    return int(float(text[: len(text) - len(unit)]) * _BYTE_UNITS[unit])


@dataclass(frozen=True)
class DataLimits:
    """data.limits: what a source may grow to once read (the defaults mirror the schema's)."""

    max_bytes: int = 2**30
    max_columns: int = 10_000
    max_classes: int = 1_000

    @classmethod
    def from_mapping(cls, limits: dict | None) -> DataLimits:
        limits = limits or {}
        default = cls()
        return cls(
            max_bytes=parse_bytes(limits.get("max_bytes", default.max_bytes)),
            max_columns=int(limits.get("max_columns", default.max_columns)),
            max_classes=int(limits.get("max_classes", default.max_classes)),
        )


@dataclass(frozen=True)
class DataSpec:
    source: str
    format: str | None
    # None: every column but the label and `exclude`; an npz key; column names (types inferred); or, frozen as
    # written, a mapping of names to a type or {type, missing, encode, max_categories} (see declared_columns).
    features: str | tuple[str, ...] | MappingProxyType | None
    label: str | None
    connection: str | None
    split: Split
    query: str | None  # a sql:// source's SQL; like source, a template rendered when prepare_data runs
    preprocess: tuple[Step, ...]
    limits: DataLimits = DataLimits()
    exclude: tuple[str, ...] = ()  # columns left out when features is None

    @property
    def declared_columns(self) -> dict[str, Column | None]:
        """data.features as typed columns by name, in spec order (None where the data decides the type);
        {} when features is None (every column but the label and `exclude`, all inferred)."""
        return declared_columns(self.features, self.exclude)


@dataclass(frozen=True)
class ModelArchitecture:
    framework: str  # a name in mlspec.ml.frameworks.FRAMEWORKS
    task: str  # vocabulary.TASKS
    layers: tuple[Step, ...]  # Keras
    estimator: str | None  # scikit-learn
    params: MappingProxyType  # the model's constructor parameters (scikit-learn's estimator, ...)


@dataclass(frozen=True)
class Optimizer:
    name: str
    learning_rate: float


@dataclass(frozen=True)
class EarlyStopping:
    monitor: str
    patience: int
    min_delta: float
    restore_best_weights: bool


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int
    batch_size: int
    optimizer: Optimizer
    loss: str
    early_stopping: EarlyStopping | None
    seed: int


@dataclass(frozen=True)
class Threshold:
    min: float | None
    max: float | None


@dataclass(frozen=True)
class ChampionGate:
    metric: str  # compared on the test split; its direction comes from vocabulary.METRICS
    min_delta: float


@dataclass(frozen=True)
class HoldoutSpec:
    """evaluation.holdout: a fixed evaluation set, read like data.source (both templates)."""

    source: str
    query: str | None = None

    @classmethod
    def from_mapping(cls, holdout: dict | None) -> HoldoutSpec | None:
        return None if holdout is None else cls(source=holdout["source"], query=holdout.get("query"))


@dataclass(frozen=True)
class EvaluationSpec:
    metrics: tuple[str, ...]
    thresholds: MappingProxyType  # metric -> Threshold
    champion: ChampionGate | None  # None: the gate is off
    holdout: HoldoutSpec | None = None  # None: the test split comes from data.source


@dataclass(frozen=True)
class DriftSpec:
    """validation.drift (the defaults mirror the schema's)."""

    threshold: float | None = None  # None: each drift test's own default
    share: float = 0.5  # the data set drifts when at least this share of its columns drift
    on_drift: str = "warn"  # fail | warn: what any drifted column does to the run


@dataclass(frozen=True)
class ValidationSpec:
    """`validation`: the data checks of validate_data, against the reference's published profile."""

    reference: str = "production"  # the only reference today: the production version's training data
    schema: str = "warn"  # fail | warn | off
    drift: DriftSpec = DriftSpec()

    @classmethod
    def from_mapping(cls, validation: dict | None) -> ValidationSpec:
        validation = validation or {}
        default, drift = cls(), validation.get("drift") or {}
        return cls(
            reference=validation.get("reference", default.reference),
            schema=validation.get("schema", default.schema),
            drift=DriftSpec(
                threshold=drift.get("threshold", default.drift.threshold),
                share=drift.get("share", default.drift.share),
                on_drift=drift.get("on_drift", default.drift.on_drift),
            ),
        )


@dataclass(frozen=True)
class ExportSpec:
    format: str
    opset: int
    parity_samples: int
    parity_atol: float
    parity_rtol: float


@dataclass(frozen=True)
class StorageSpec:
    uri: str
    connection: str | None
    keep_runs: int = 20  # run scratch folders kept; older ones are pruned when a run prepares its data


@dataclass(frozen=True)
class RegistrySpec:
    backend: str
    connection: str | None


@dataclass(frozen=True)
class RequestLogSpec:
    """serving.log_requests: a sampled share of live requests written to the store (mlspec.server.request_log)."""

    sample: float  # share of requests logged, in (0, 1]
    max_mb_per_hour: float  # Parquet megabytes written per model and hour at most

    @classmethod
    def from_mapping(cls, log_requests: dict | None) -> RequestLogSpec | None:
        if log_requests is None:
            return None
        return cls(sample=float(log_requests["sample"]), max_mb_per_hour=float(log_requests["max_mb_per_hour"]))


@dataclass(frozen=True)
class ServingSpec:
    """`serving`: what every platform reads, plus the chosen platform's own settings (`serving.<platform>`)."""

    platform: str  # a name in mlspec.serving.platforms.PLATFORMS
    runtime: str  # one of that platform's runtimes
    auth: str  # none | token: the endpoint wants a bearer token
    url: str | None  # local: the model server's URL (None: MLSPEC_SERVER_URL)
    connection: str | None  # Airflow connection id of the platform's credentials
    timeout: int  # seconds a deploy waits for the endpoint to become ready
    settings: Any = None  # the platform's typed settings, e.g. KServeSettings; None when it has none
    log_requests: RequestLogSpec | None = None  # None: no request is logged

    @classmethod
    def from_mapping(cls, serving: dict) -> ServingSpec:
        return cls(
            platform=serving["platform"],
            runtime=serving["runtime"],
            auth=serving["auth"],
            url=serving["url"],
            connection=serving["connection"],
            timeout=serving["timeout"],
            settings=platform_named(serving["platform"]).settings_of(serving),
            log_requests=RequestLogSpec.from_mapping(serving.get("log_requests")),
        )


@dataclass(frozen=True)
class TrackingSpec:
    backend: str  # mlflow | none
    connection: str | None


@dataclass(frozen=True)
class SmokeTestSpec:
    samples: int
    min_agreement: float
    max_latency_ms: float
    atol: float  # regression agreement: |answer - expected| <= atol + rtol * |expected|
    rtol: float


@dataclass(frozen=True)
class TuningSpec:
    """`tuning`: several trials (Airflow mapped tasks), the best by `metric` on the validation split goes on."""

    strategy: str  # grid | random | optuna
    trials: int
    parallel: int  # at most this many trials at once
    seed: int
    metric: str  # e.g. val_accuracy
    direction: str | None  # maximize | minimize; None: the metric's own (mlspec.tuning.objective_direction)
    space: MappingProxyType  # path into the spec -> {choice: [...]} | {uniform: [lo, hi]} | ...
    connection: str | None  # optuna: the study's database (Airflow connection id); None: SQLite under MLSPEC_HOME

    @classmethod
    def from_mapping(cls, tuning: dict | None) -> TuningSpec | None:
        if tuning is None:
            return None
        objective = tuning["objective"]
        return cls(
            strategy=tuning["strategy"],
            trials=tuning["trials"],
            parallel=tuning["parallel"],
            seed=tuning["seed"],
            metric=objective["metric"],
            direction=objective.get("direction"),
            space=_freeze(tuning["space"]),
            connection=tuning.get("connection"),
        )


@dataclass(frozen=True)
class ShadowStep:
    """rollout.shadow: production answers, a `percent` share of live requests is copied to the candidate."""

    percent: int  # 1..100
    for_s: int  # how long the step bakes


@dataclass(frozen=True)
class CanarySpec:
    """rollout.canary: the candidate answers steps[i] percent of live requests, each step baking bake_s."""

    steps: tuple[int, ...]  # strictly increasing, the last 100 (lint)
    bake_s: int


@dataclass(frozen=True)
class RolloutGates:
    """rollout.gates: what each step must show; None: that gate is not checked."""

    p95_ms: float | None
    error_rate: float | None
    agreement: float | None
    min_requests: int  # a step waits for this many requests (up to 3 x its bake) before the gates decide


@dataclass(frozen=True)
class ApprovalSpec:
    """rollout.approval: a person approves before the last canary step."""

    required: bool
    timeout_s: int  # the approval, a pause or a hold waits this long; then rollback


@dataclass(frozen=True)
class RolloutMetricsSpec:
    """rollout.metrics: where the gates read (vocabulary.ROLLOUT_METRICS_SOURCES)."""

    source: str  # server: the endpoint's /metrics | prometheus: a Prometheus server that scrapes it
    connection: str | None  # prometheus: the Airflow connection id of the Prometheus server


@dataclass(frozen=True)
class RolloutSpec:
    """`rollout`: shadow and canary steps after the smoke test, gated on live metrics (mlspec.rollout)."""

    shadow: ShadowStep | None  # None: no shadow step
    canary: CanarySpec
    gates: RolloutGates
    approval: ApprovalSpec
    on_fail: str  # vocabulary.ROLLOUT_ON_FAIL: rollback | hold
    metrics: RolloutMetricsSpec

    @classmethod
    def from_mapping(cls, rollout: dict | None) -> RolloutSpec | None:
        """The typed section of a resolved spec (defaults filled), or None when the spec has none."""
        if rollout is None:
            return None
        shadow, canary, gates = rollout["shadow"], rollout["canary"], rollout["gates"]
        approval, metrics = rollout["approval"], rollout["metrics"]
        return cls(
            shadow=None if shadow is None else ShadowStep(
                percent=shadow["percent"], for_s=parse_duration(shadow["for"], where="rollout.shadow.for")
            ),
            canary=CanarySpec(
                steps=tuple(canary["steps"]), bake_s=parse_duration(canary["bake"], where="rollout.canary.bake")
            ),
            gates=RolloutGates(
                p95_ms=gates["p95_ms"],
                error_rate=gates["error_rate"],
                agreement=gates["agreement"],
                min_requests=gates["min_requests"],
            ),
            approval=ApprovalSpec(
                required=approval["required"],
                timeout_s=parse_duration(approval["timeout"], where="rollout.approval.timeout"),
            ),
            on_fail=rollout["on_fail"],
            metrics=RolloutMetricsSpec(source=metrics["source"], connection=metrics["connection"]),
        )


@dataclass(frozen=True)
class NotifySpec:
    """`notify`: who hears of a failed run, a champion that holds or a rolled back rollout, through which
    Airflow connection."""

    connection: str  # Airflow connection id of the notifier (smtp)
    to: tuple[str, ...]
    events: tuple[str, ...]  # mlspec.notify.EVENTS: failure | champion_holds | rollback

    @classmethod
    def from_mapping(cls, notify: dict | None) -> NotifySpec | None:
        if notify is None:
            return None
        return cls(connection=notify["connection"], to=tuple(notify["to"]), events=tuple(notify["events"]))


@dataclass(frozen=True)
class ModelSpec:
    metadata: Metadata
    schedule: Any  # None | str | MappingProxyType({"assets": (...)})
    data: DataSpec
    model: ModelArchitecture
    training: TrainingSpec
    evaluation: EvaluationSpec
    export: ExportSpec
    storage: StorageSpec
    registry: RegistrySpec
    tracking: TrackingSpec
    serving: ServingSpec
    smoke_test: SmokeTestSpec
    resolved: MappingProxyType  # the validated spec with every default filled in
    source_file: str = ""
    tuning: TuningSpec | None = None  # None: train once
    notify: NotifySpec | None = None  # None: no notifications
    # `timeouts`: task id or "default" -> duration ("2h"); None: the built-in deadlines (mlspec.deadlines)
    timeouts: MappingProxyType | None = None
    validation: ValidationSpec = ValidationSpec()  # always there: the defaults when the spec has no section
    # None: no `rollout` section; the candidate takes all traffic at once after the smoke test, as before
    rollout: RolloutSpec | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def spec_hash(self) -> str:
        """sha256 of the resolved spec: equal specs (after defaults) hash the same, wherever they live."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict:
        return thaw(self.resolved)

    @classmethod
    def from_dict(cls, d: dict, source_file: str = "") -> ModelSpec:
        """Build from a resolved dict (validated, defaults filled): see mlspec.spec.load_spec."""
        md, data, tr, ev, ex, sv = d["metadata"], d["data"], d["training"], d["evaluation"], d["export"], d["serving"]
        es = tr["early_stopping"]
        features = data["features"]
        return cls(
            metadata=Metadata(md["name"], md["description"], md["owner"], tuple(md["tags"])),
            schedule=_freeze(d["schedule"]),
            data=DataSpec(
                source=data["source"],
                format=data["format"],
                features=_freeze(features),
                label=data["label"],
                connection=data["connection"],
                split=Split.from_mapping(data["split"]),
                query=data.get("query"),
                preprocess=tuple(Step.from_mapping(s) for s in data["preprocess"]),
                limits=DataLimits.from_mapping(data.get("limits")),
                exclude=tuple(data.get("exclude") or ()),
            ),
            model=ModelArchitecture(
                framework=d["model"]["framework"],
                task=d["model"]["task"],
                layers=tuple(Step.from_mapping(s) for s in d["model"]["layers"]),
                estimator=d["model"]["estimator"],
                params=_freeze(d["model"]["params"]),
            ),
            training=TrainingSpec(
                epochs=tr["epochs"],
                batch_size=tr["batch_size"],
                optimizer=Optimizer(**tr["optimizer"]),
                loss=tr["loss"],
                early_stopping=EarlyStopping(**es) if es else None,
                seed=tr["seed"],
            ),
            evaluation=EvaluationSpec(
                metrics=tuple(ev["metrics"]),
                thresholds=MappingProxyType({k: Threshold(v.get("min"), v.get("max")) for k, v in ev["thresholds"].items()}),
                champion=None if ev["champion"] is None else ChampionGate(ev["champion"]["metric"], ev["champion"]["min_delta"]),
                holdout=HoldoutSpec.from_mapping(ev.get("holdout")),
            ),
            export=ExportSpec(ex["format"], ex["opset"], ex["parity"]["samples"], ex["parity"]["atol"], ex["parity"]["rtol"]),
            storage=StorageSpec(**d["storage"]),
            registry=RegistrySpec(**d["registry"]),
            tracking=TrackingSpec(**d["tracking"]),
            serving=ServingSpec.from_mapping(sv),
            smoke_test=SmokeTestSpec(**d["smoke_test"]),
            resolved=_freeze(d),
            source_file=source_file,
            tuning=TuningSpec.from_mapping(d.get("tuning")),
            notify=NotifySpec.from_mapping(d.get("notify")),
            timeouts=_freeze(d["timeouts"]) if d.get("timeouts") else None,
            validation=ValidationSpec.from_mapping(d.get("validation")),
            rollout=RolloutSpec.from_mapping(d.get("rollout")),
        )
