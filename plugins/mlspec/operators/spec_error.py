"""The only task of a placeholder DAG for an invalid spec: it fails with the spec's errors."""

from __future__ import annotations

from airflow.sdk import BaseOperator


class SpecErrorOperator(BaseOperator):
    ui_color = "#f28b82"

    def __init__(self, *, errors: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.errors = errors

    def execute(self, context) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"this spec does not compile; fix it and the DAG comes back:\n{self.errors}")
