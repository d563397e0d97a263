"""Checks the JSON Schema cannot express, each reported at the node it is about."""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from mlspec.spec.errors import SpecProblem, quote
from mlspec.spec.yaml_loader import LoadedYaml
from mlspec.vocabulary import DATA_SOURCES, LAYERS, LOSSES, METRICS, metrics_for

# Matched with fullmatch: `$` would also match before a trailing newline ("iris\n" passed).
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional controls (embeddings, overrides, isolates, marks): U+202E makes "ml-team\u202egnp.exe" read
# differently from what it is. Refused with the control characters in every free-text field.
BIDI_CONTROL = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Invisible characters (zero-width space, joiners, word joiner, BOM): "ml-team" and "ml\u200b-team" look the same.
INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff]")
UNPRINTABLE = re.compile(CONTROL_CHARACTER.pattern[:-1] + BIDI_CONTROL.pattern[1:-1] + INVISIBLE.pattern[1:])
# 2 GiB of float32 weights: a larger ONNX model cannot be written as one file (protobuf's limit), and training
# it needs several times that in memory. Above it lint warns.
PARAMETER_WARNING = 2**29
CRON_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually"}
CREDENTIAL_KEY = re.compile(r"(passw(or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential)", re.I)
AWS_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")

SPATIAL_LAYERS = {kind for kind, (_, rank) in LAYERS.items() if rank == 3}


def _urlparse(value: str):
    """urlparse, or None for text it refuses (an unbalanced '[' raises ValueError: 'Invalid IPv6 URL')."""
    try:
        return urlparse(value)
    except ValueError:
        return None


def _scheme(value: str) -> str:
    parsed = _urlparse(value)
    return parsed.scheme if parsed else ""


def check(doc: LoadedYaml, spec: dict) -> list[SpecProblem]:
    """`spec` is the schema-valid spec with defaults filled; positions come from doc."""
    checks = (_text, _names, _uris, _schedule, _framework, _reshape, _evaluation, _layers, _model_size, _training, _serving, _deploy_deadline, _tuning)
    return [problem for check_fn in checks for problem in check_fn(doc, spec)]


def _names(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    name = spec["metadata"]["name"]
    if not DNS_1123_LABEL.fullmatch(name):
        yield doc.problem(
            ("metadata", "name"),
            f"{quote(name)} is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a "
            "letter or digit); it names the DAG, the registered model and the InferenceService",
        )
    namespace = spec["serving"]["namespace"]
    if not DNS_1123_LABEL.fullmatch(namespace):
        yield doc.problem(("serving", "namespace"), f"{quote(namespace)} is not a valid Kubernetes namespace (DNS-1123 label)")


def _text(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """No control character (newline, NUL, ESC, ...) or bidirectional control (U+202E, ...) in any text the
    spec holds, keys included: they forge log lines, cut names short or make text read as something else in
    the Airflow UI, the registry and the model card. (URIs report their control characters themselves.)"""
    for path, value in _walk(doc.data):
        if path and isinstance(path[-1], str):
            found = UNPRINTABLE.search(path[-1])
            if found:
                yield doc.problem(path, f"key {quote(path[-1])} {_unprintable(found.group())}", at_key=True)
        if not isinstance(value, str):
            continue
        uri = path in (("data", "source"), ("storage", "uri"))
        found = (BIDI_CONTROL if uri else UNPRINTABLE).search(value)
        if found:
            yield doc.problem(path, f"{quote(value)} {_unprintable(found.group())}")


def _unprintable(char: str) -> str:
    kind = ("bidirectional control" if BIDI_CONTROL.fullmatch(char)
            else "invisible character" if INVISIBLE.fullmatch(char) else "control character")
    return (
        f"contains the {kind} U+{ord(char):04X}; spec text is one line of printable characters (no newline, tab, "
        "NUL, escape, direction override or invisible character, which forge log lines or make text read as something else)"
    )


def _walk(value, path=()) -> Iterator[tuple[tuple, object]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, path + (index,))


def check_credentials(doc: LoadedYaml) -> list[SpecProblem]:
    """Runs before the schema, on the raw document: a credential is refused as such, not as an unknown key."""
    return list(_credentials(doc))


def _credentials(doc: LoadedYaml) -> Iterator[SpecProblem]:
    advice = "credentials never belong in a spec: put them in an Airflow connection and name its id"
    for path, value in _walk(doc.data):
        if path and isinstance(path[-1], str) and CREDENTIAL_KEY.search(path[-1]):
            yield doc.problem(path, f"key {quote(path[-1])} looks like a credential; {advice}", at_key=True)
        if isinstance(value, str):
            if AWS_ACCESS_KEY.search(value):
                yield doc.problem(path, f"this value looks like an AWS access key; {advice}")
            elif "://" in value and (re.match(r"^[a-z0-9+]+://[^/@\s]+@", value) or getattr(_urlparse(value), "password", None)):
                yield doc.problem(path, f"URI carries user info (user:password@); {advice}")


def _uris(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    source = spec["data"]["source"]
    scheme = source.split(":", 1)[0] if ":" in source else ""
    if scheme in ("builtin", "keras"):
        if source not in DATA_SOURCES:
            known = ", ".join(s for s in DATA_SOURCES if s.startswith(scheme))
            yield doc.problem(("data", "source"), f"unknown dataset {quote(source)}; available: {known}")
    elif scheme not in ("file", "s3"):
        yield doc.problem(
            ("data", "source"), f"unsupported source {quote(source)}; use builtin:, keras:, file:// or s3://"
        )
    elif scheme == "file" and spec["data"]["format"] is None and not source.lower().endswith((".npz", ".csv", ".parquet")):
        yield doc.problem(("data", "format"), f"cannot infer the format of {quote(source)}; set data.format to npz, csv or parquet")
    uri = spec["storage"]["uri"]
    if _scheme(uri) not in ("file", "s3"):
        yield doc.problem(("storage", "uri"), f"unsupported storage URI {quote(uri)}; use file://path or s3://bucket/prefix")
    for path, value, is_source in (("storage", "uri"), uri, False), (("data", "source"), source, True):
        problem = _uri_problem(value, names_an_object=is_source)
        if problem:
            yield doc.problem(path, problem)


def _uri_problem(value: str, *, names_an_object: bool) -> str | None:
    """What is wrong with a store or data URI, in any part of it: control characters, '..', no bucket."""
    control = CONTROL_CHARACTER.search(value)
    if control:
        return f"{quote(value)} contains the control character {control.group()!r}; a URI is one line of plain text"
    if value != value.strip():
        return f"{quote(value)} starts or ends with white space"
    parsed = _urlparse(value)
    if parsed is None:
        return f"{quote(value)} is not a valid URI"
    rest = value.split("://", 1)[1] if "://" in value else value.split(":", 1)[-1]
    if ".." in re.split(r"[/\\]", rest):
        return f"{quote(value)} contains '..'; store and data paths may not climb out of their prefix"
    if parsed.scheme == "file" and not rest.strip("/"):
        return f"{quote(value)} has no path; use file://models (under MLSPEC_HOME) or file:///absolute/path"
    if parsed.scheme != "s3":
        return None
    if not value.startswith("s3://"):
        return f"{quote(value)} is not written s3://bucket/key"
    bucket, _, key = rest.partition("/")
    if not bucket:
        return f"{quote(value)} has no bucket; write s3://bucket/{'key' if names_an_object else 'prefix'}"
    if not S3_BUCKET.fullmatch(bucket) or ".." in bucket:
        return (
            f"bucket {quote(bucket)} in {quote(value)} is not a valid S3 bucket name (3 to 63 lowercase letters, "
            "digits, '.' and '-', starting and ending with a letter or digit)"
        )
    if names_an_object and not key.strip("/"):
        return f"{quote(value)} names a bucket, not an object; give the full key of the data file"
    return None


def _schedule(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    schedule = spec["schedule"]
    if not isinstance(schedule, str):
        return
    if schedule == "@continuous":
        yield _frequent(doc, spec, "@continuous starts the next run as soon as one ends, many times an hour")
        return
    if schedule in CRON_PRESETS:
        return
    if schedule.startswith("@"):
        yield doc.problem(("schedule",), f"unknown preset {quote(schedule)}; use one of {', '.join(sorted(CRON_PRESETS))}")
        return
    from croniter import croniter

    if len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        yield doc.problem(("schedule",), f"{quote(schedule)} is not a valid cron expression (five fields: minute hour day month weekday)")
        return
    minutes = croniter(schedule).expanded[0]
    per_hour = 60 if "*" in minutes else len(minutes)
    if per_hour > 1:
        yield _frequent(doc, spec, f"{quote(schedule)} starts a run up to {per_hour} times an hour")


def _frequent(doc: LoadedYaml, spec: dict, what: str) -> SpecProblem:
    """The warning for a sub-hourly schedule."""
    keep = spec["storage"].get("keep_runs")
    return doc.problem(
        ("schedule",),
        f"{what}; every run trains a model and leaves a scratch folder in the store "
        f"(storage.keep_runs: {keep} keeps the newest). Hourly or slower is usual; check this is meant",
        severity="warning",
    )


def _deploy_deadline(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """An explicit timeouts.deploy must outlast the readiness wait (serving.timeout), with room to roll back."""
    from mlspec.deadlines import DEPLOY_MARGIN_S, deploy_floor_s, parse_duration

    written = (spec.get("timeouts") or {}).get("deploy")
    if written is None:
        return  # the built-in deadline or timeouts.default: never under the floor (mlspec.deadlines)
    try:
        seconds = parse_duration(written, where="timeouts.deploy")
    except ValueError:
        return  # the schema reports a malformed duration
    wait, floor = int(spec["serving"]["timeout"]), deploy_floor_s(spec)
    if seconds <= wait:
        yield doc.problem(
            ("timeouts", "deploy"),
            f"{written} is not longer than serving.timeout ({wait}s): the deploy would be killed while still waiting "
            f"for the endpoint to become ready, before it can roll back; use at least {_duration(floor)} "
            f"(serving.timeout + {DEPLOY_MARGIN_S // 60}m) or leave timeouts.deploy out",
        )
    elif seconds < floor:
        yield doc.problem(
            ("timeouts", "deploy"),
            f"{written} leaves less than {DEPLOY_MARGIN_S // 60}m after serving.timeout ({wait}s) to load, roll back "
            f"and record; a slow endpoint can be killed mid-rollback. Use at least {_duration(floor)} or leave it out",
            severity="warning",
        )


def _duration(seconds: int) -> str:
    """Seconds as a timeouts duration (`1h10m`, `20m`, `90s`)."""
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def _framework(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """What each framework needs and refuses, and data that fits the task."""
    model, task = spec["model"], spec["model"]["task"]
    known = DATA_SOURCES.get(spec["data"]["source"])
    if known is not None and known.task != task:
        yield doc.problem(
            ("data", "source"), f"{spec['data']['source']} is a {known.task} data set but model.task is {task}"
        )
    if model["framework"] == "tensorflow":
        if not model["layers"]:
            yield doc.problem(("model",), "framework tensorflow needs model.layers (the Keras network), e.g. - dense: {units: 10}")
        for key in ("estimator", "params"):
            if model[key]:  # set to something (a resolved spec's own dump carries null and {})
                yield doc.problem(("model", key), f"model.{key} is a scikit-learn setting; with framework tensorflow describe the network in model.layers", at_key=True)
        return
    yield from _sklearn(doc, spec)


def _sklearn(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    from mlspec.spec import estimators

    model, task = spec["model"], spec["model"]["task"]
    if model["layers"]:
        yield doc.problem(("model", "layers"), "model.layers are Keras layers; with framework sklearn name an estimator instead", at_key=True)
    if "training" in doc.data and _keras_settings_changed(spec):
        yield doc.problem(
            ("training",),
            "training (epochs, optimizer, loss, early stopping) holds Keras settings; with framework sklearn remove it "
            "and set the estimator's parameters in model.params",
            at_key=True,
        )
    if not model["estimator"]:
        names = ", ".join(estimators.estimator_names(task))
        yield doc.problem(("model",), f"framework sklearn needs model.estimator; for {task}: {names}")
    else:
        problems = estimators.check_params(task, model["estimator"], dict(model["params"]))
        # (An empty suffix means the estimator itself is unknown: then it has no parameters to look up.)
        known = estimators.estimator_params(task, model["estimator"]) if all(suffix for suffix, _ in problems) else {}
        for suffix, message in problems:
            path = ("model", "estimator") if not suffix else ("model", "params", *suffix)
            # An unknown name is pointed at its key, a bad value at the value.
            yield doc.problem(path, message, at_key=bool(suffix) and suffix[0] not in known)
    for index, step in enumerate(spec["data"]["preprocess"]):
        (kind,) = step
        if kind in ("reshape", "one_hot"):
            yield doc.problem(
                ("data", "preprocess", index, kind),
                f"{kind} is for Keras models; scikit-learn estimators take one feature vector per sample and class labels",
                at_key=True,
            )
    known = DATA_SOURCES.get(spec["data"]["source"])
    if known is not None and len(known.shape) != 1:
        yield doc.problem(
            ("data", "source"),
            f"{spec['data']['source']} has samples of shape {list(known.shape)}; scikit-learn estimators need one feature vector per sample",
        )


def _keras_settings_changed(spec: dict) -> bool:
    """Whether `training` says anything beyond the defaults (a resolved spec's own dump carries them)."""
    from mlspec.spec.schema import fill_defaults, fill_task_defaults

    baseline = fill_task_defaults(fill_defaults({"model": {"task": spec["model"]["task"]}, "training": {}, "evaluation": {}}))
    return spec["training"] != baseline["training"]


def _reshape(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """A reshape keeps the number of values per sample: it must hold exactly what a known source gives."""
    known = DATA_SOURCES.get(spec["data"]["source"])
    if known is None or spec["model"]["framework"] != "tensorflow":
        return  # scikit-learn refuses reshape altogether (_sklearn)
    size = math.prod(known.shape)
    for index, step in enumerate(spec["data"]["preprocess"]):
        if "reshape" not in step:
            continue
        target = list(step["reshape"])
        if math.prod(target) != size:
            yield doc.problem(
                ("data", "preprocess", index, "reshape"),
                f"reshape {target} holds {math.prod(target):,} values per sample, but {spec['data']['source']} gives "
                f"{size:,} (shape {list(known.shape)}); the dimensions must multiply to {size}",
                at_key=True,
            )


def _evaluation(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    computed = spec["evaluation"]["metrics"]
    task = spec["model"]["task"]
    champion = spec["evaluation"]["champion"]
    if champion is not None and champion["metric"] not in computed:
        yield doc.problem(
            ("evaluation", "champion", "metric"),
            f"the champion gate compares {champion['metric']}, which is not computed; evaluation.metrics has {', '.join(computed)}",
        )
    for index, metric in enumerate(computed):
        if METRICS[metric].task != task:
            yield doc.problem(
                ("evaluation", "metrics", index), f"{metric} is a {METRICS[metric].task} metric; for {task} use {', '.join(metrics_for(task))}"
            )
    for metric, bounds in spec["evaluation"]["thresholds"].items():
        path = ("evaluation", "thresholds", metric)
        if metric not in computed:
            yield doc.problem(path, f"threshold on `{metric}`, which is not computed; evaluation.metrics has {', '.join(computed)}", at_key=True)
        low, high = bounds.get("min"), bounds.get("max")
        if low is not None and high is not None and low > high:
            yield doc.problem(path, f"min {low} is greater than max {high}; no model could pass")
        if metric in METRICS and METRICS[metric].bounded:
            for bound, value in (("min", low), ("max", high)):
                if value is not None and not 0 <= value <= 1:
                    yield doc.problem(path + (bound,), f"{metric} lies between 0 and 1, so a {bound} of {value} can never be met")


def input_shape_after_preprocess(spec: dict) -> tuple[int, ...] | None:
    """Per-sample input shape the first layer sees, when the data source or a reshape tells it."""
    known = DATA_SOURCES.get(spec["data"]["source"])
    shape = known.shape if known else None
    if shape is None and spec["data"]["format"] in ("csv", "parquet") or str(spec["data"]["source"]).endswith((".csv", ".parquet")):
        shape = (None,)  # tables give one feature vector per row
    for step in spec["data"]["preprocess"]:
        if "reshape" in step:
            shape = tuple(step["reshape"])
    return shape


def _layers(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    layers = spec["model"]["layers"]
    if spec["model"]["framework"] != "tensorflow" or not layers:
        return
    shape = input_shape_after_preprocess(spec)
    rank = len(shape) if shape is not None else None
    for index, layer in enumerate(layers):
        ((kind, params),) = layer.items()
        path = ("model", "layers", index, kind)
        if kind in SPATIAL_LAYERS and rank is not None and rank != 3:
            yield doc.problem(
                path,
                f"{kind} needs input of rank 3 per sample (height, width, channels) but gets rank {rank} "
                f"(shape {list(shape) if rank == len(shape or ()) else '?'}); add a preprocess `reshape` step, e.g. [8, 8, 1]",
                at_key=True,
            )
            rank = None  # one message is enough; later shapes are unknown
            continue
        if rank is not None:
            rank = 1 if kind in ("flatten", "global_average_pooling2d") else rank
    known = DATA_SOURCES.get(spec["data"]["source"])
    classes = known.classes if known else None
    last_kind, last_params = next(iter(layers[-1].items()))
    last = ("model", "layers", len(layers) - 1, "dense")
    if spec["model"]["task"] == "regression":
        if last_kind == "dense" and last_params.get("units") != 1:
            yield doc.problem(last + ("units",), f"a regression model predicts one value: the last layer needs units: 1, not {last_params.get('units')}")
        if last_kind == "dense" and last_params.get("activation") in ("softmax", "sigmoid"):
            yield doc.problem(last + ("activation",), f"{last_params['activation']} squashes the prediction; a regression model ends with a linear layer (no activation)")
    elif classes is not None and last_kind == "dense" and last_params.get("units") != classes:
        yield doc.problem(
            ("model", "layers", len(layers) - 1, "dense", "units"),
            f"the last layer has {last_params.get('units')} units but {spec['data']['source']} has {classes} classes",
        )
    if last_kind != "dense":
        yield doc.problem(("model", "layers", len(layers) - 1), f"the last layer must be dense (one unit per class, or one for regression), not {last_kind}")


def _pair(value) -> tuple[int, int]:
    """A window or stride: one number (3, or 3.0, which JSON Schema calls an integer too) or [height, width]."""
    return (int(value), int(value)) if isinstance(value, int | float) else (int(value[0]), int(value[-1]))


def _spatial(shape: list | None, window, strides, padding: str) -> list | None:
    """Height and width after a conv or pooling window (Keras' arithmetic); None when unknown."""
    if not shape or len(shape) != 3:
        return None
    out = []
    for size, k, s in zip(shape[:2], _pair(window), _pair(strides), strict=True):
        s = max(s, 1)
        if size is None:
            out.append(None)
        elif padding == "same":
            out.append(-(-int(size) // s))
        else:
            out.append(max((int(size) - k) // s + 1, 0))
    return out


def estimate_parameters(spec: dict) -> int:
    """The Keras network's parameter count (trainable and not), as far as the input shape is known: the first
    layer's inputs count as 0 when the data's width is unknown (a table read at run time)."""
    shape = input_shape_after_preprocess(spec)
    shape = list(shape) if shape is not None else None
    total = 0
    for layer in spec["model"]["layers"]:
        ((kind, params),) = layer.items()
        params = params or {}
        last = int(shape[-1] or 0) if shape else 0
        if kind == "dense":
            units = int(params["units"])
            total += last * units + (units if params.get("use_bias", True) else 0)
            shape = (shape[:-1] if shape else []) + [units]
        elif kind == "conv2d":
            filters = int(params["filters"])
            kh, kw = _pair(params.get("kernel_size", 3))
            total += kh * kw * last * filters + filters
            spatial = _spatial(shape, (kh, kw), params.get("strides", 1), params.get("padding", "valid"))
            shape = spatial + [filters] if spatial else None
        elif kind in ("max_pooling2d", "average_pooling2d"):
            pool = params.get("pool_size", 2)
            spatial = _spatial(shape, pool, params.get("strides") or pool, params.get("padding", "valid"))
            shape = spatial + [shape[-1]] if spatial else None
        elif kind == "global_average_pooling2d":
            shape = [shape[-1]] if shape else None
        elif kind == "flatten":
            shape = [math.prod(shape)] if shape and None not in shape else [None]
        elif kind == "batch_normalization":
            total += 4 * last  # gamma, beta, moving mean and variance
    return total


def _model_size(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    if spec["model"]["framework"] != "tensorflow" or not spec["model"]["layers"]:
        return
    total = estimate_parameters(spec)
    if total > PARAMETER_WARNING:
        # Integers all the way: a reshape may name a dimension of 10**400, which no float holds.
        count = f"about {total:,}" if total < 10**18 else f"more than 10^{len(str(total)) - 1}"
        size = f"{total * 4 // 10**9:,} GB" if total < 10**18 else "far more than any machine has"
        yield doc.problem(
            ("model", "layers"),
            f"the network has {count} parameters ({size} of float32 weights); an ONNX model "
            "over 2 GB cannot be exported as one file, and training needs several times the weights in memory",
            at_key=True,
            severity="warning",
        )


def _training(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    if spec["data"]["split"]["validation"] + spec["data"]["split"]["test"] >= 0.9:
        yield doc.problem(("data", "split"), "validation + test leave less than 10% of the data for training")
    if spec["model"]["framework"] != "tensorflow":
        return
    task = spec["model"]["task"]
    one_hot = any("one_hot" in step for step in spec["data"]["preprocess"])
    loss = spec["training"]["loss"]
    if loss not in LOSSES[task]:
        yield doc.problem(("training", "loss"), f"{loss} is not a {task} loss; use one of {', '.join(LOSSES[task])}")
        return
    if task == "regression" and one_hot:
        yield doc.problem(("data", "preprocess"), "one_hot encodes class labels; a regression target stays a number")
    if one_hot and loss == "sparse_categorical_crossentropy":
        yield doc.problem(("training", "loss"), "labels are one-hot encoded (preprocess one_hot): use categorical_crossentropy")
    if not one_hot and loss == "categorical_crossentropy":
        yield doc.problem(("training", "loss"), "categorical_crossentropy needs one-hot labels: add a preprocess `one_hot: {}` step")
    early = spec["training"]["early_stopping"]
    if early and early["monitor"].startswith("val_") and spec["data"]["split"]["validation"] == 0:
        yield doc.problem(("training", "early_stopping", "monitor"), f"monitors {early['monitor']} but data.split.validation is 0")
    wrong_metric = "accuracy" if task == "regression" else "rmse"
    if early and early["monitor"].removeprefix("val_") == wrong_metric:
        yield doc.problem(("training", "early_stopping", "monitor"), f"{early['monitor']} is not reported for {task}; monitor loss or {'rmse' if task == 'regression' else 'accuracy'}")


def _serving(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    serving = spec["serving"]
    platform, runtime = serving["platform"], serving["runtime"]
    if platform == "local" and runtime != "onnxruntime":
        yield doc.problem(("serving", "runtime"), f"platform local serves with onnxruntime, not {runtime}")
    if platform == "kserve" and runtime == "onnxruntime":
        yield doc.problem(("serving", "runtime"), "platform kserve needs runtime kserve-ovms or kserve-tritonserver")
    if platform == "kserve" and _scheme(spec["storage"]["uri"]) != "s3":
        yield doc.problem(("storage", "uri"), "platform kserve pulls the model from object storage: use an s3:// storage.uri")
    if serving["replicas"]["min"] == 0 and serving["deployment_mode"] != "Serverless":
        yield doc.problem(("serving", "replicas", "min"), "scaling to zero needs deployment_mode: Serverless")
    if serving["replicas"]["min"] > serving["replicas"]["max"]:
        yield doc.problem(("serving", "replicas"), f"min {serving['replicas']['min']} is greater than max {serving['replicas']['max']}")
    if spec["registry"]["backend"] == "kubeflow" and not spec["registry"]["connection"]:
        yield doc.problem(("registry", "connection"), "the kubeflow backend needs a connection id (host, port, token)")


# --------------------------------------------------------------------------- tuning
# Checks that change the spec in ways a tuned value could break; each is run again on the spec as a trial
# would change it, and what it says then (and not of the spec itself) is the tuned value's problem.
_TRIAL_CHECKS = (_framework, _layers, _training)


def _tuning(doc: LoadedYaml, spec: dict) -> Iterator[SpecProblem]:
    """tuning: the objective is reported by the framework, every space path is a setting, every value a
    distribution can produce is valid there (and keeps the spec valid), grid has only choice lists."""
    tuning = spec.get("tuning")
    if not tuning:
        return
    from mlspec import tuning as rules

    framework, task = spec["model"]["framework"], spec["model"]["task"]
    objective = tuning["objective"]
    metric, direction = objective["metric"], objective.get("direction")
    reported = rules.objective_metrics(framework, task)
    if metric not in reported:
        yield doc.problem(
            ("tuning", "objective", "metric"),
            f"{framework} does not report {metric} for {task} on the validation split; use one of {', '.join(reported)}",
        )
    elif spec["data"]["split"]["validation"] == 0:
        yield doc.problem(
            ("tuning", "objective", "metric"),
            f"{metric} is measured on the validation split, but data.split.validation is 0; set it above 0",
        )
    elif direction and direction != rules.metric_direction(metric):
        natural = rules.metric_direction(metric)
        yield doc.problem(
            ("tuning", "objective", "direction"),
            f"{metric} is better when {'higher' if natural == 'maximize' else 'lower'}, so {direction} would pick the worst "
            f"trial; set {natural} or leave direction out",
        )
    if tuning["parallel"] > tuning["trials"]:
        yield doc.problem(
            ("tuning", "parallel"), f"parallel {tuning['parallel']} is more than trials {tuning['trials']}; at most {tuning['trials']} trials run at once"
        )
    if tuning.get("connection") and tuning["strategy"] != "optuna":
        yield doc.problem(
            ("tuning", "connection"), f"the connection names Optuna's study database; strategy {tuning['strategy']} keeps no study", at_key=True
        )
    for key, dist in tuning["space"].items():
        yield from _space_entry(doc, spec, tuning["strategy"], key, dist)


def _space_entry(doc: LoadedYaml, spec: dict, strategy: str, key: str, dist: dict) -> Iterator[SpecProblem]:
    from mlspec import tuning as rules

    where = ("tuning", "space", key)
    ((kind, args),) = dist.items()
    if strategy == "grid" and kind != "choice":
        yield doc.problem(
            where + (kind,),
            f"strategy grid takes the product of choice lists, and {kind} is a range; list the values with choice, "
            "or use strategy random or optuna",
            at_key=True,
        )
        return
    if kind != "choice":
        low, high = args
        if (low > high) if kind == "int_uniform" else (low >= high):
            bound = "at most" if kind == "int_uniform" else "less than"
            yield doc.problem(where + (kind,), f"low {low} must be {bound} high {high}")
            return
    try:
        parts = rules.parse_path(key)
    except ValueError as exc:
        yield doc.problem(where, str(exc), at_key=True)
        return
    refused = _untunable(spec, parts)
    if refused:
        yield doc.problem(where, refused, at_key=True)
        return
    field, missing = _tuned_field(spec, parts)
    if missing:
        yield doc.problem(where, missing, at_key=True)
        return
    is_valid, describe = field
    probes = rules.probe_values(dist)
    for position, value in enumerate(probes):
        problem = describe(value) if not is_valid(value) else None
        if problem is None:
            continue
        if kind == "choice":
            yield doc.problem(where + ("choice", position), f"{_show(value)} is not a valid {key}: {problem}")
        else:
            yield doc.problem(
                where + (kind,), f"{kind} [{args[0]}, {args[1]}] can draw {_show(value)}, which is not a valid {key}: {problem}"
            )
        return
    # Each value on its own must leave a spec the other checks accept (ranges: their ends).
    baseline = {(p.path, p.message) for check_fn in _TRIAL_CHECKS for p in check_fn(doc, spec)}
    for position, value in enumerate(probes if kind == "choice" else [probes[0], probes[-1]]):
        try:
            variant = rules.apply_overrides(spec, {key: value})
        except rules.TuningError as exc:
            yield doc.problem(where, str(exc), at_key=True)
            return
        for check_fn in _TRIAL_CHECKS:
            for problem in check_fn(doc, variant):
                if (problem.path, problem.message) in baseline:
                    continue
                at = where + ("choice", position) if kind == "choice" else where + (kind,)
                yield doc.problem(at, f"with {key} = {_show(value)}: {problem.path}: {problem.message}")
                return


def _show(value: object) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _untunable(spec: dict, parts: tuple) -> str:
    from mlspec import tuning as rules

    framework = spec["model"]["framework"]
    if parts[0] not in rules.TUNABLE_ROOTS:
        return "only model and training settings can be tuned (every trial is scored on the same data and split)"
    if len(parts) == 1:
        return f"name a setting inside {parts[0]}, e.g. {'training.optimizer.learning_rate' if framework == 'tensorflow' else 'model.params.max_depth'}"
    if tuple(parts[:2]) in rules.UNTUNABLE:
        return f"{parts[0]}.{parts[1]} cannot be tuned: the trials are compared as one kind of model"
    if framework == "tensorflow" and parts[:2] == ("model", "params"):
        return "model.params is a scikit-learn setting; with framework tensorflow tune model.layers or training"
    if framework == "sklearn" and (parts[0] == "training" or parts[:2] == ("model", "layers")):
        return f"{parts[0]}.{parts[1]} is a Keras setting; with framework sklearn tune model.params.<parameter>"
    return ""


def _tuned_field(spec: dict, parts: tuple):
    """((is_valid, describe_problem), "") for the field at `parts`, or (None, why it is not a setting).

    model.params.<name> of a scikit-learn spec: the estimator's parameter (its JSON Schema from
    scikit-learn's constraints); anything else: the field's JSON Schema, walked beside the spec's data.
    """
    import difflib

    if parts[:2] == ("model", "params") and len(parts) > 2:
        from mlspec.spec import estimators

        if len(parts) != 3 or not isinstance(parts[2], str):
            return None, "a scikit-learn parameter is model.params.<name>"
        model = spec["model"]
        try:
            schema = estimators.param_schema(model["task"], str(model["estimator"]), parts[2])
        except KeyError as exc:
            return None, str(exc.args[0])
        except ValueError as exc:
            return None, str(exc)
        checker = estimators.validator(schema)
        return (checker.is_valid, lambda _value: f"{parts[2]} must be {estimators.describe(schema)}"), ""

    from mlspec.spec.schema import load_schema

    node, data = load_schema(), spec
    for depth, part in enumerate(parts):
        here = _tuning_path(parts[: depth + 1])
        node = _branch_for(node, data)
        if isinstance(part, int):
            if not isinstance(data, list) or part >= len(data):
                size = len(data) if isinstance(data, list) else 0
                return None, f"{here} does not exist: {_tuning_path(parts[:depth])} has {size} item{'s' if size != 1 else ''}"
            items = node.get("items", {}) if isinstance(node.get("items"), dict) else {}
            data = data[part]
            node = _branch_for(items, data)
            continue
        if not isinstance(data, dict):
            parent = _tuning_path(parts[:depth])
            kind = "null" if data is None else type(data).__name__
            return None, f"{here} does not exist: {parent} is {kind}; set it in the spec to tune what is inside it"
        properties = node.get("properties", {})
        if part not in properties:
            close = difflib.get_close_matches(part, list(properties), n=1, cutoff=0.6)
            hint = f"did you mean {_tuning_path(parts[:depth] + (close[0],))}? " if close else ""
            parent = _tuning_path(parts[:depth]) or "the spec"
            return None, f"{here} does not exist; {hint}{parent} has {', '.join(properties) or 'no settings'}"
        node, data = properties[part], data.get(part)

    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    checker = Draft202012Validator(node)
    return (checker.is_valid, lambda value: best_match(checker.iter_errors(value)).message), ""


def _branch_for(node: dict, data: object) -> dict:
    """The oneOf branch of `node` that describes `data` (a layer's branch by its key, an object's branch)."""
    branches = node.get("oneOf")
    if not branches:
        return node
    if isinstance(data, dict):
        if len(data) == 1:
            (key,) = data
            for branch in branches:
                if branch.get("required") == [key]:
                    return branch
        for branch in branches:
            if branch.get("type") == "object":
                return branch
    return node


def _tuning_path(parts: tuple) -> str:
    from mlspec.tuning import format_path

    return format_path(parts)



# --------------------------------------------------------------------------- local files (lint only)


def check_local_files(doc: LoadedYaml, spec: dict) -> list[SpecProblem]:
    """`mlspec lint` only, on a valid spec: a file:// store must be within the allowed store folders, and a
    file:// data source within the allowed data folders and, when it exists here, a regular file within the
    size cap. (Parsing DAGs never looks at files: the data may live only where tasks run, and the allowed
    folders are the workers' MLSPEC_DATA_ROOTS / MLSPEC_STORE_ROOTS.)"""
    from mlspec.errors import StoreError
    from mlspec.storage import check_data_path, check_store_path, file_uri_path, max_source_bytes
    from mlspec.storage.file import file_kind

    def home() -> Path:
        return Path(os.environ.get("MLSPEC_HOME") or Path.home() / ".mlspec").expanduser()

    # The specs folder, for the default roots (its parent is the project folder) when MLSPEC_SPECS_DIR is unset.
    specs_dir = Path(doc.file).resolve().parent if doc.file and not doc.file.startswith("<") else None
    problems: list[SpecProblem] = []
    uri = spec["storage"]["uri"]
    if _scheme(uri) == "file":
        try:
            store = check_store_path(file_uri_path(uri, home), what=quote(uri), specs_dir=specs_dir)
        except StoreError as exc:
            problems.append(doc.problem(("storage", "uri"), str(exc)))
        else:
            problems.extend(_served_store_warning(doc, spec, uri, store, home))
    source = spec["data"]["source"]
    if _scheme(source) != "file":
        return problems
    try:
        path = file_uri_path(source, home)
        check_data_path(path, what=quote(source), specs_dir=specs_dir)
    except StoreError as exc:
        return [*problems, doc.problem(("data", "source"), str(exc))]
    try:
        info = os.stat(path)  # follows symlinks: a link to /dev/zero is a device
    except (FileNotFoundError, NotADirectoryError):
        return problems
    except OSError as exc:
        return [*problems, doc.problem(("data", "source"), f"cannot check {quote(source)} ({path}): {exc.strerror or exc}")]
    if not stat.S_ISREG(info.st_mode):
        return [
            *problems,
            doc.problem(
                ("data", "source"),
                f"{quote(source)} ({path}) is a {file_kind(info.st_mode)}, not a regular file; a data source must "
                "be a file (a device or a pipe would be read without end)",
            ),
        ]
    from mlspec.spec.model import parse_bytes
    from mlspec.storage import source_cap_hint

    limit = max_source_bytes(parse_bytes(spec["data"].get("limits", {}).get("max_bytes", 0)))
    if info.st_size > limit:
        return [
            *problems,
            doc.problem(
                ("data", "source"),
                f"{quote(source)} is {info.st_size} bytes; data sources are limited to {limit} bytes: "
                f"{source_cap_hint()}",
            ),
        ]
    return problems


def _served_store_warning(doc: LoadedYaml, spec: dict, uri: str, store: Path, home) -> list[SpecProblem]:
    """A warning when the local model server, as started by default (`mlspec serve`, `make serve`), would
    refuse to load from this file:// store: it loads only from MLSPEC_HOME/models without --allow-root."""
    if spec["serving"]["platform"] != "local":
        return []
    served = Path(os.path.realpath(home() / "models"))
    if store == served or served in store.parents:
        return []
    return [
        doc.problem(
            ("storage", "uri"),
            f"the local model server loads only from {served} by default, so deploying from {quote(uri)} "
            f"would be refused (403); start it with --allow-root {store.as_uri()} (or use file://models)",
            severity="warning",
        )
    ]
