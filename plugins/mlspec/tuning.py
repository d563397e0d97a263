"""Hyperparameter tuning, framework-neutral and pure: which trials to train, what each one changes in
the spec, and which one won.

`tuning.space` maps a path into the resolved spec to a distribution::

    training.optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
    model.layers[0].dense.units: {choice: [32, 64, 128]}
    model.params.max_depth: {int_uniform: [3, 12]}

A trial is `{"index": i, "params": {path: value}}` (grid, random), or for optuna
`{"index": i, "params": None, "optuna": {...the study...}}`: an optuna trial gets its parameters
only when it starts, from the shared study (`OptunaTrial.ask`), so that trials running in parallel
on different workers learn from every trial that finished before they started.

Nothing heavy is imported here: optuna (and SQLAlchemy, Airflow connections) only inside the
functions that need them, so lint and DAG parsing may import this module.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlspec import embedded_state
from mlspec.connections import get_connection
from mlspec.errors import MlspecError
from mlspec.home import mlspec_home
from mlspec.ml.frameworks import framework_named
from mlspec.plain_data import thaw
from mlspec.spec.schema import fill_defaults, fill_task_defaults
from mlspec.vocabulary import METRICS

log = logging.getLogger(__name__)

STRATEGIES = ("grid", "random", "optuna")
DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int_uniform")
# The tag a trial's tracking run carries.
TRIAL_TAG = "mlspec.trial"
# The optuna trial's user attribute naming the mlspec trial (map index) it belongs to.
OPTUNA_TRIAL_ATTR = "mlspec_trial"
# Run parameters of the trigger form and the spec field each overrides (see TrainingPlan.from_spec).
RUN_PARAM_PATHS = {"epochs": ("training", "epochs"), "learning_rate": ("training", "optimizer", "learning_rate")}
# Sections a trial may change: settings of the model and its fitting, never the data it is compared on.
TUNABLE_ROOTS = ("model", "training")
UNTUNABLE = {("model", "framework"), ("model", "task"), ("model", "estimator")}

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


class TuningError(MlspecError):
    """The tuning section cannot be carried out as written, or no trial produced a result."""


# --------------------------------------------------------------------------- paths


def parse_path(path: str) -> tuple[str | int, ...]:
    """`model.layers[0].dense.units` -> ("model", "layers", 0, "dense", "units"); ValueError if malformed."""
    parts: list[str | int] = []
    for segment in str(path).split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise ValueError(
                f"{path!r} is not a path into the spec: dotted names with optional [index], "
                "e.g. training.optimizer.learning_rate or model.layers[0].dense.units"
            )
        parts.append(match.group(1))
        parts.extend(int(index) for index in _INDEX.findall(match.group(2)))
    return tuple(parts)


def format_path(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def param_key(path: str) -> str:
    """A path as an MLflow parameter name (no brackets): model.layers[0].dense.units -> model.layers.0.dense.units."""
    return _INDEX.sub(lambda m: f".{m.group(1)}", str(path))


def apply_overrides(spec: Mapping[str, Any], params: Mapping[str, Any] | None) -> dict:
    """A deep copy of the resolved spec dict with each `path: value` of a trial set (defaults of a
    replaced mapping filled in again). The input is not changed; no params returns an equal copy."""
    resolved = copy.deepcopy(thaw(spec))
    if not params:
        return resolved
    for path, value in params.items():
        parts = parse_path(path)
        node: Any = resolved
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, parts[: depth + 1], path)
        last = parts[-1]
        if isinstance(node, dict) and isinstance(last, str):
            node[last] = copy.deepcopy(value)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = copy.deepcopy(value)
        else:
            raise TuningError(f"tuning.space: {path} does not exist in the spec (at {format_path(parts)})")
    # Not at module level: mlspec.spec's lint imports this module.

    return fill_task_defaults(fill_defaults(resolved))


def _child(node: Any, part: str | int, where: Sequence[str | int], path: str) -> Any:
    if isinstance(node, dict) and isinstance(part, str) and isinstance(node.get(part), dict | list):
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    raise TuningError(f"tuning.space: {path} does not exist in the spec ({format_path(where)} is missing or not a mapping/list)")


def run_params_for_trial(run_params: Mapping[str, Any], space_paths: Iterable[str]) -> dict[str, Any]:
    """The trigger form's parameters without those that would undo what the trial tunes (a form's
    `learning_rate` has the spec's value as its default and must not override a tuned one)."""
    tuned = [parse_path(p) for p in space_paths]
    kept = {}
    for name, value in run_params.items():
        target = RUN_PARAM_PATHS.get(name)
        if target is not None and any(target[: len(p)] == p for p in tuned):
            continue
        kept[name] = value
    return kept


def tuned_run_params(space_paths: Iterable[str]) -> set[str]:
    """The trigger-form parameters (epochs, learning_rate) that a tuned field makes meaningless."""
    probe = {name: True for name in RUN_PARAM_PATHS}
    return set(probe) - set(run_params_for_trial(probe, space_paths))


# --------------------------------------------------------------------------- objective


def objective_metrics(framework: str, task: str) -> tuple[str, ...]:
    """The validation metrics a framework reports for a trial, the objectives a spec may name."""
    return framework_named(framework).objective_metrics(task)


def metric_direction(metric: str) -> str:
    """The direction in which a validation metric improves."""
    base = metric.removeprefix("val_")
    if base == "loss":
        return "minimize"
    known = METRICS.get(base)
    if known is None:
        raise TuningError(f"unknown objective metric {metric!r}")
    return "maximize" if known.higher_is_better else "minimize"


def objective_direction(metric: str, direction: str | None = None) -> str:
    return direction or metric_direction(metric)


def _score(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def select_best(results: Iterable[Mapping[str, Any]], metric: str, direction: str | None = None) -> Mapping[str, Any]:
    """The trial result with the best finite objective value (ties: the lowest trial index).

    Each result is a train result of a trial: {"trial": {"index", "params"}, "objective": {"value"}, ...}.
    """
    direction = objective_direction(metric, direction)
    scored = []
    for result in results:
        value = _score((result.get("objective") or {}).get("value"))
        if value is not None:
            scored.append((value, int(result["trial"]["index"]), result))
    if not scored:
        raise TuningError(f"no trial reported a finite {metric}; nothing to select")
    sign = -1.0 if direction == "maximize" else 1.0
    return min(scored, key=lambda item: (sign * item[0], item[1]))[2]


# --------------------------------------------------------------------------- distributions


def distribution(spec: Mapping[str, Any]) -> tuple[str, Any]:
    """`{log_uniform: [lo, hi]}` -> ("log_uniform", [lo, hi])."""
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise TuningError(f"unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}")
    return kind, args


def draw(rng: random.Random, spec: Mapping[str, Any]) -> Any:
    kind, args = distribution(spec)
    if kind == "choice":
        return copy.deepcopy(args[rng.randrange(len(args))])
    low, high = args
    if kind == "int_uniform":
        return rng.randint(int(low), int(high))
    if kind == "uniform":
        return min(max(rng.uniform(float(low), float(high)), float(low)), float(high))
    value = math.exp(rng.uniform(math.log(float(low)), math.log(float(high))))
    return min(max(value, float(low)), float(high))


def probe_values(spec: Mapping[str, Any], most: int = 1000) -> list[Any]:
    """Values to validate a distribution by, for lint: every choice; every integer of a small
    int_uniform range (else `most` spread over it, both ends included); for float ranges both ends and
    points between them that are not whole numbers."""
    kind, args = distribution(spec)
    if kind == "choice":
        return list(args)
    low, high = args
    if kind == "int_uniform":
        low, high = int(low), int(high)
        if high - low < most:
            return list(range(low, high + 1))
        return sorted({low, high, *(low + (high - low) * k // (most - 1) for k in range(most))})
    fractions = (0.013, 0.137, 0.333, 0.5, 0.617, 0.871, 0.987)
    if kind == "log_uniform" and low > 0 and high > 0:
        inner = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * f) for f in fractions]
    else:
        inner = [low + (high - low) * f for f in fractions]
    return [low, *(v for v in inner if low < v < high), high]


def grid_size(space: Mapping[str, Any]) -> int:
    size = 1
    for spec in space.values():
        kind, args = distribution(spec)
        if kind != "choice":
            raise TuningError("strategy grid takes the product of choice lists only")
        size *= len(args)
    return size


def grid_params(space: Mapping[str, Any], trials: int) -> list[dict[str, Any]]:
    """The first `trials` combinations of the choice lists, the last path varying fastest."""
    grid_size(space)
    paths = list(space)
    combos = itertools.islice(itertools.product(*(space[p]["choice"] for p in paths)), trials)
    return [dict(zip(paths, (copy.deepcopy(v) for v in combo), strict=True)) for combo in combos]


def random_params(space: Mapping[str, Any], trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` seeded draws; a draw that repeats an earlier one is drawn again (a few times) when the
    space has room. The first n trials are the same whatever `trials` is."""
    rng = random.Random(seed)
    seen: set[str] = set()
    planned = []
    for _ in range(trials):
        params: dict[str, Any] = {}
        for _attempt in range(20):
            params = {path: draw(rng, spec) for path, spec in space.items()}
            key = json.dumps(params, sort_keys=True)
            if key not in seen:
                break
        seen.add(json.dumps(params, sort_keys=True))
        planned.append(params)
    return planned


def plan_trials(tuning: Mapping[str, Any], *, trials: int | None = None, study: Mapping[str, Any] | None = None) -> list[dict]:
    """The trials of one run: [{"index": i, "params": {...}}], or optuna placeholders that carry the study."""
    count = int(trials or tuning["trials"])
    if count < 1:
        raise TuningError(f"trials must be at least 1, got {count}")
    space, strategy = tuning["space"], tuning["strategy"]
    if strategy == "grid":
        planned = grid_params(space, count)
        if len(planned) < count:
            log.info("grid: %d combinations, fewer than the %d trials asked for", len(planned), count)
        return [{"index": i, "params": p, "strategy": strategy} for i, p in enumerate(planned)]
    if strategy == "random":
        return [{"index": i, "params": p, "strategy": strategy} for i, p in enumerate(random_params(space, count, int(tuning["seed"])))]
    if strategy == "optuna":
        if study is None:
            raise TuningError("strategy optuna needs its study (create_study) to plan trials")
        return [{"index": i, "params": None, "strategy": strategy, "optuna": dict(study)} for i in range(count)]
    raise TuningError(f"unknown tuning.strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")


# --------------------------------------------------------------------------- optuna


def study_name(dag_id: str, run_id: str) -> str:
    """One study per DAG run: retries of plan_trials find it again; runs on new data start afresh."""
    return f"mlspec/{dag_id}/{run_id}"


def startup_trials(trials: int) -> int:
    """Random trials before TPE models the results: half the trials, at least 1, at most Optuna's 10."""
    return max(1, min(10, trials // 2))


def storage_url(connection_id: str | None) -> str:
    """The SQLAlchemy URL of the study database: SQLite under MLSPEC_HOME, or an Airflow connection's
    database (conn type postgres/mysql/...; extra `sqlalchemy_scheme` picks the driver, e.g.
    postgresql+psycopg; extra `sqlalchemy_url` gives the whole URL). Holds credentials: never log it."""
    if not connection_id:
        folder = mlspec_home() / "tuning"
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / 'optuna.db'}"
    connection = get_connection(connection_id, used_for="the Optuna study database (tuning.connection)", error_type=TuningError)
    return connection_url(connection)


_DRIVERS = {"postgres": "postgresql", "postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "mssql": "mssql+pyodbc"}


def connection_url(connection: Any) -> str:
    extra = connection.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    from sqlalchemy.engine import URL

    conn_type = str(connection.conn_type or "")
    driver = extra.get("sqlalchemy_scheme") or _DRIVERS.get(conn_type)
    if not driver:
        raise TuningError(
            f"Airflow connection {connection.conn_id!r} (type {conn_type!r}) is not a database Optuna can use; "
            "use a postgres or mysql connection, or set extra sqlalchemy_url"
        )
    url = URL.create(
        drivername=str(driver),
        username=connection.login or None,
        password=connection.password or None,
        host=connection.host or None,
        port=int(connection.port) if connection.port else None,
        database=connection.schema or None,
    )
    return url.render_as_string(hide_password=False)


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for a log line
        return "<database>"


def _storage(url: str) -> Any:
    """Optuna's storage. A SQLite file (the embedded study database) is opened under its lock: creating
    its tables and version rows is not safe twice at once (runs starting together raced on a fresh home)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    path = _sqlite_file(url)
    if path is None:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    from sqlalchemy.exc import DatabaseError, OperationalError

    path.parent.mkdir(parents=True, exist_ok=True)
    with embedded_state.locked(path):
        problem = embedded_state.unreadable(path) if embedded_state.exists(path) else None
        if problem is None:
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            except DatabaseError as exc:
                if isinstance(exc, OperationalError):  # locked, disk full, ...: not the file's fault
                    raise
                problem = " ".join(str(exc.orig or exc).split())[:200]
    raise TuningError(
        f"the Optuna study database {path} cannot be read ({problem}). It holds only the trial history of "
        "tuning runs (one study per DAG run); models, the store and the registry are not in it. Delete it "
        f"(rm {path}) and clear this run's plan_trials task: a new database and study are made, and this "
        "run's trials search from the start (earlier runs' studies are lost)"
    )


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def create_study(
    *, name: str, connection: str | None, metric: str, direction: str | None, seed: int, trials: int,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create (or find again, on a retry) the run's study; returns the reference trials carry."""
    import optuna

    _quiet_optuna()
    url = storage_url(connection)
    direction = objective_direction(metric, direction)
    study = optuna.create_study(study_name=name, storage=_storage(url), direction=direction, load_if_exists=True)
    for key, value in (attributes or {}).items():
        study.set_user_attr(key, value)
    log.info("optuna study %r (%s, %s %s) in %s", name, "TPE", direction, metric, _hide_password(url))
    return {"study": name, "connection": connection, "seed": int(seed), "startup_trials": startup_trials(trials)}


def _encode_choices(choices: Sequence[Any]) -> tuple[list[Any], bool]:
    """Optuna's categorical choices must be None, bool, int, float or str; others go as JSON text."""
    if all(v is None or isinstance(v, bool | int | float | str) for v in choices):
        return list(choices), False
    return [json.dumps(v, sort_keys=True) for v in choices], True


def optuna_distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    import optuna.distributions as od

    result = {}
    for path, spec in space.items():
        kind, args = distribution(spec)
        if kind == "choice":
            result[path] = od.CategoricalDistribution(_encode_choices(args)[0])
        elif kind == "int_uniform":
            result[path] = od.IntDistribution(int(args[0]), int(args[1]))
        else:
            result[path] = od.FloatDistribution(float(args[0]), float(args[1]), log=kind == "log_uniform")
    return result


def _decode(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    decoded = {}
    for path, spec in space.items():
        value = params[path]
        kind, args = distribution(spec)
        if kind == "choice" and _encode_choices(args)[1]:
            value = json.loads(value)
        elif kind == "int_uniform":
            value = int(value)
        elif kind in ("uniform", "log_uniform"):
            value = float(value)
        decoded[path] = value
    return decoded


@dataclass
class OptunaTrial:
    """One mlspec trial's Optuna trial: ask when it starts, tell when it ends.

    mode: "asked" (a new Optuna trial, told its value or FAIL at the end); "replay" (a retry of a
    task whose earlier try asked and died: the same parameters are trained again and recorded as a new,
    finished trial); "done" (an earlier try already told the study: nothing more to tell).
    """

    study: Any
    index: int
    number: int | None
    params: dict[str, Any]
    encoded: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, Any] = field(default_factory=dict)
    mode: str = "asked"

    @classmethod
    def ask(cls, reference: Mapping[str, Any], space: Mapping[str, Any], index: int) -> OptunaTrial:
        import optuna
        from optuna.trial import TrialState

        _quiet_optuna()
        # Seeded per trial: parallel trials with one seed would draw the same start-up parameters.
        sampler = optuna.samplers.TPESampler(
            seed=int(reference["seed"]) + index, n_startup_trials=int(reference["startup_trials"]), constant_liar=True
        )
        url = storage_url(reference.get("connection"))
        study = optuna.load_study(study_name=reference["study"], storage=_storage(url), sampler=sampler)
        distributions = optuna_distributions(space)
        earlier = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(OPTUNA_TRIAL_ATTR) == index]
        if earlier:
            done = [t for t in earlier if t.state == TrialState.COMPLETE]
            for stale in earlier:
                if stale.state == TrialState.RUNNING:  # the try that asked it is gone
                    study.tell(stale.number, state=TrialState.FAIL, skip_if_finished=True)
            chosen = done[-1] if done else earlier[0]
            log.info("optuna: trial %d was asked before (optuna trial %d, %s); training its parameters again",
                     index, chosen.number, chosen.state.name)
            return cls(study, index, chosen.number, _decode(space, chosen.params), dict(chosen.params), distributions,
                       "done" if done else "replay")
        trial = study.ask(distributions)
        trial.set_user_attr(OPTUNA_TRIAL_ATTR, index)
        finished = sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        log.info("optuna: trial %d is optuna trial %d, sampled after %d finished trials", index, trial.number, finished)
        return cls(study, index, trial.number, _decode(space, trial.params), dict(trial.params), distributions, "asked")

    def tell(self, value: float) -> None:
        import optuna
        from optuna.trial import TrialState

        finite = _score(value) is not None
        if self.mode == "asked":
            if finite:
                self.study.tell(self.number, float(value), skip_if_finished=True)
            else:
                self.study.tell(self.number, state=TrialState.FAIL, skip_if_finished=True)
        elif self.mode == "replay":
            self.study.add_trial(
                optuna.trial.create_trial(
                    params=self.encoded, distributions=self.distributions,
                    value=float(value) if finite else None, state=TrialState.COMPLETE if finite else TrialState.FAIL,
                    user_attrs={OPTUNA_TRIAL_ATTR: self.index},
                )
            )
        self.mode = "done"

    def fail(self) -> None:
        from optuna.trial import TrialState

        if self.mode == "asked":
            try:
                self.study.tell(self.number, state=TrialState.FAIL, skip_if_finished=True)
            except Exception:  # noqa: BLE001 - the original failure matters more
                log.warning("could not mark optuna trial %s failed", self.number, exc_info=True)
        self.mode = "done"
