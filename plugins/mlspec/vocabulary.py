"""The words a spec may use, defined once: tasks, data sources, layers, losses, metrics.

The JSON Schema, lint (`spec.lint`) and the code that acts on a word (data loaders, the Keras
builder, metrics) all read these tables; tests/spec/test_spec_vocabulary.py fails when the schema
and a table disagree. Pure data: importing this module costs nothing at DAG parse time.
The frameworks are the table `mlspec.ml.frameworks.FRAMEWORKS`; scikit-learn's estimators and their
parameters live beside its adapter, in `mlspec.ml.frameworks.sklearn_estimators` (a generated table).
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("classification", "regression")

# What each task's exported model answers (ONNX output names, so also the endpoint's outputs).
INPUT_NAME = "input"
OUTPUTS = {"classification": ("probabilities", "label"), "regression": ("prediction",)}


@dataclass(frozen=True)
class KnownSource:
    """A named data set whose shape is known before it is loaded (lint checks layers against it)."""

    task: str
    shape: tuple[int, ...]  # per-sample raw feature shape
    classes: int | None  # None for regression
    offline: bool  # False: downloaded on first use


DATA_SOURCES: dict[str, KnownSource] = {
    "builtin:digits": KnownSource("classification", (64,), 10, True),
    "builtin:iris": KnownSource("classification", (4,), 3, True),
    "builtin:wine": KnownSource("classification", (13,), 3, True),
    "builtin:breast_cancer": KnownSource("classification", (30,), 2, True),
    "builtin:diabetes": KnownSource("regression", (10,), None, True),
    "keras:mnist": KnownSource("classification", (28, 28), 10, False),
    "keras:fashion_mnist": KnownSource("classification", (28, 28), 10, False),
    "keras:cifar10": KnownSource("classification", (32, 32, 3), 10, False),
}
DATA_FORMATS = ("npz", "csv", "parquet")
# validate_data checks an array data set column by column up to this many flat features per sample (images
# have more: their data is not checked); a table's columns are always checked.
MAX_CHECKED_FEATURES = 100

# The files a version publishes about its data, beside model.onnx (issue 14).
SPLITS_FILE = "splits.parquet"  # which rows went to which split (row_id, content_id, split)
PROFILE_FILE = "profile.json"  # the training split's column profile: the next run's drift reference
DRIFT_FILE = "drift.json"  # validate_data's table of schema checks and drift tests
DRIFT_PLOT = "drift.png"  # the drift table drawn: reference against this run's training split
LINEAGE_FILE = "lineage.json"  # source, digest, rows per split and the data checks' outcome
# validate_data's check names in drift.json (a schema problem is named by what it checks).
DRIFT_CHECK = "drift"  # a drift test on the whole training split
DRIFT_NEW_ROWS_CHECK = "drift (new rows)"  # the same test on the rows the reference version did not train on
# Drift tests whose score is a p-value (drifted below the threshold); the others score a distance.
P_VALUE_TESTS = ("ks", "chi2")
# What validate_data concluded: no production profile to compare with, nothing found, found and went on
# (warn), found and retrained anyway (--accept-drift), found and stopped the run, data not checkable.
VALIDATION_OUTCOMES = ("no_reference", "passed", "warned", "accepted", "failed", "skipped")
FEATURE_STEPS = ("scale", "normalize", "reshape")  # become part of the exported model
LABEL_STEPS = ("one_hot",)  # change the labels only

# spec layer type -> (keras.layers class, per-sample input rank it needs, or None for any)
LAYERS: dict[str, tuple[str, int | None]] = {
    "dense": ("Dense", None),
    "conv2d": ("Conv2D", 3),
    "max_pooling2d": ("MaxPooling2D", 3),
    "average_pooling2d": ("AveragePooling2D", 3),
    "global_average_pooling2d": ("GlobalAveragePooling2D", 3),
    "flatten": ("Flatten", None),
    "dropout": ("Dropout", None),
    "batch_normalization": ("BatchNormalization", None),
}
OPTIMIZERS = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop"}
LOSSES = {
    "classification": ("sparse_categorical_crossentropy", "categorical_crossentropy"),
    "regression": ("mean_squared_error", "mean_absolute_error"),
}
ONE_HOT_LOSSES = ("categorical_crossentropy",)


@dataclass(frozen=True)
class Metric:
    task: str
    higher_is_better: bool
    bounded: bool  # within [0, 1]


METRICS: dict[str, Metric] = {
    "accuracy": Metric("classification", True, True),
    "precision": Metric("classification", True, True),  # macro average
    "recall": Metric("classification", True, True),
    "f1": Metric("classification", True, True),
    "rmse": Metric("regression", False, False),
    "mae": Metric("regression", False, False),
    "mse": Metric("regression", False, False),
    "r2": Metric("regression", True, False),  # at most 1, unbounded below
}
DEFAULT_METRICS = {"classification": ("accuracy", "precision", "recall", "f1"), "regression": ("rmse", "mae", "r2")}
DEFAULT_LOSS = {"classification": "sparse_categorical_crossentropy", "regression": "mean_squared_error"}


def metrics_for(task: str) -> tuple[str, ...]:
    return tuple(name for name, metric in METRICS.items() if metric.task == task)


# What the champion gate scored production on (its verdict's "scored_on"; the card and the Models page read it).
SCORED_ON_HOLDOUT = "the holdout"
SCORED_ON_TEST_SPLIT = "this run's test split"
SCORED_ON_RECORDED_METRICS = "the metrics the registry recorded"

# Progressive delivery (issue 16): the words of a spec's `rollout` section and of a rollout's record.
ROLLOUT_STEP_KINDS = ("shadow", "canary")  # shadow: a copy of live requests; canary: a share of them, answered
ROLLOUT_GATES = ("p95_ms", "error_rate", "agreement", "min_requests")
ROLLOUT_ON_FAIL = ("rollback", "hold")  # a failed gate: production takes all traffic back, or the step waits for a person
ROLLOUT_METRICS_SOURCES = ("server", "prometheus")  # where gates read: the model server's /metrics, or a Prometheus server
# A rollout's state on the candidate's registry record (the last three are final).
ROLLOUT_STATES = ("running", "paused", "held", "awaiting_approval", "completed", "rolled_back", "aborted")
ROLLOUT_FINAL_STATES = ("completed", "rolled_back", "aborted")
ROLLOUT_COMMANDS = ("pause", "resume", "abort")  # `mlspec rollout SPEC --pause|--resume|--abort`

# The model server's /metrics (Prometheus text format). Every series has the labels `model` and `version`;
# the server writes them (mlspec.server.metrics) and the rollout gates read them (mlspec.rollout.metrics).
METRIC_REQUESTS = "mlspec_requests_total"  # + code: live requests the version answered, by HTTP status
METRIC_LATENCY = "mlspec_request_duration_seconds"  # histogram: a live request from its body read to its answer
METRIC_ROWS = "mlspec_rows_total"  # rows (batch entries) the version answered
METRIC_SHADOW_REQUESTS = "mlspec_shadow_requests_total"  # + primary, outcome: copies the shadow version got
METRIC_SHADOW_ROWS = "mlspec_shadow_rows_total"  # + primary, result: rows compared with the answering version
METRIC_SHADOW_LATENCY = "mlspec_shadow_duration_seconds"  # histogram: a shadow copy's decode and run
METRIC_CLASSES = "mlspec_predictions_total"  # + output, class: answered rows by predicted class
METRIC_PREDICTION = "mlspec_prediction"  # histogram + output: a regression's answered values
METRIC_TRAFFIC = "mlspec_traffic_percent"  # gauge: the share of live requests routed to the version
METRIC_SHADOW_PERCENT = "mlspec_shadow_percent"  # gauge: the share of live requests copied to the version
METRIC_REQUEST_LOG_ROWS = "mlspec_request_log_rows_total"  # rows written to the request log
# + reason: rows not logged (mlspec.request_logs.DROP_REASONS: cap, queue_full, write_error)
METRIC_REQUEST_LOG_DROPPED = "mlspec_request_log_dropped_total"
# gauge, no model label: when the server process started (unix seconds); a change means its counters began again
METRIC_START_TIME = "mlspec_server_start_time_seconds"
SHADOW_OUTCOMES = ("compared", "error", "dropped")  # dropped: the shadow queue was full
SHADOW_RESULTS = ("agree", "disagree")
# Latency histogram buckets (seconds), shared by the server and by the gates' p95 estimate.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
