"""What every mlspec operator shares: the resolved spec, the run's store prefix, loading what an
earlier stage handed over, clear failures.

Stages hand each other small JSON dicts (URIs, metrics) through their arguments: in a compiled DAG
those are the previous stages' `.output` (XComArgs), in a hand-written DAG any task's output or a
literal dict. No operator looks up another task by its id.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from mlspec.deadlines import task_deadline
from mlspec.errors import MlspecError
from mlspec.ml import tabular
from mlspec.ml.frameworks import get_adapter
from mlspec.spec.model import ModelSpec
from mlspec.storage import open_store

log = logging.getLogger(__name__)


class MlspecOperator(BaseOperator):
    """Base of the stage operators. `spec` is the resolved spec dict (ModelSpec.to_dict()), so the
    operator serializes deterministically and can be used in a hand-written DAG as well."""

    template_fields: tuple[str, ...] = ()
    ui_color = "#e8f0fe"
    stage = "stage"
    next_step = "fix the cause above and clear this task to retry it"

    def __init__(self, *, spec: dict, spec_file: str = "", **kwargs: Any) -> None:
        """`spec_file`: the spec's path, for messages (`mlspec deploy <spec> --version N`) and for the project
        folder of the allowed data roots; the resolved `spec` dict does not carry it."""
        if kwargs.get("execution_timeout") is None:
            # Every stage has a deadline (the spec's `timeouts`, else the stage's built-in one), in a
            # compiled DAG and a hand-written one alike: nothing hung holds a run forever.

            kwargs["execution_timeout"] = task_deadline(spec, self.stage)
        super().__init__(**kwargs)
        self.spec = spec
        self.spec_file = spec_file

    @cached_property
    def model_spec(self):
        return ModelSpec.from_dict(self.spec, source_file=self.spec_file)

    @cached_property
    def store(self):
        return open_store(self.model_spec.storage.uri, self.model_spec.storage.connection)

    @cached_property
    def adapter(self):
        """The framework's adapter, with a table's columns preprocessing in front (mlspec.ml.tabular)."""
        return tabular.wrap(get_adapter(self.model_spec.model.framework))

    def run_prefix(self, context) -> str:
        return self.store.run_prefix(self.model_spec.name, context["run_id"])

    def handed_over(self, name: str) -> dict:
        """An input from an earlier stage (an argument of this operator), checked to be there."""
        value = getattr(self, name)
        if not isinstance(value, dict) or not value:
            raise MlspecError(
                f"{self.task_id} got no `{name}` from the stage before it (got {value!r}) for model "
                f"{self.model_spec.name}; run that stage first"
            )
        return value

    def load_dataset(self):
        """The run's splits, from prepare_data's result passed as `data`."""
        from mlspec.ml.data import Dataset

        return Dataset.from_npz_bytes(self.store.read_uri(self.handed_over("data")["data_uri"]))

    def load_model(self):
        """The fitted model, from train's result passed as `model`."""
        return self.adapter.load(self.store.read_uri(self.handed_over("model")["model_uri"]))

    def execute(self, context) -> Any:
        return self.run_guarded(lambda: self.run(context))

    def run_guarded(self, work) -> Any:
        """Turn an MlspecError into a task failure that names the model and the next step."""
        try:
            return work()
        except MlspecError as exc:
            from airflow.sdk.exceptions import AirflowException, AirflowFailException

            # A gate that did not hold will not hold on a retry either: fail without retrying.
            error_type = AirflowFailException if isinstance(exc, GateFailed) else AirflowException
            next_step = exc.next_step if isinstance(exc, GateFailed) and exc.next_step else self.next_step
            message = f"{self.stage} failed for model {self.model_spec.name}: {exc}\nNext step: {next_step}"
            log.error(message)
            raise error_type(message) from None

    def run(self, context) -> Any:  # pragma: no cover - every stage overrides it
        raise NotImplementedError


class TrainedModelStage(MlspecOperator):
    """A stage that works on the trained model and the run's data: `data` is prepare_data's result,
    `model` train's (or select_best's)."""

    template_fields = ("data", "model")

    def __init__(self, *, data: Any, model: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data
        self.model = model


class GateFailed(MlspecError):
    """A check that retrying cannot fix (thresholds, parity, smoke test): the task fails without retries."""

    def __init__(self, message: str, next_step: str = "") -> None:
        super().__init__(message)
        self.next_step = next_step
