"""Wait for a KServe InferenceService to become ready without holding a worker slot.

The KServe backend's ``readiness_trigger`` makes one after its ``apply``; the deploy task defers to it;
the triggerer polls the cluster and wakes the task with exactly one event:
``{"status": "ready"|"failed"|"timeout", "url": str|None, "message": str}``, which the task hands back to
the backend's ``await_ready``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlspec.serving.kserve_manifest import GROUP, PLURAL, VERSION, check_readiness

log = logging.getLogger(__name__)


class KServeReadinessTrigger(BaseTrigger):
    """Poll InferenceService `name` until `generation` is reported ready or failed, or `timeout_s` passes.

    The timeout counts from when the trigger starts running (a triggerer restart starts it again). `canary`:
    the applied version is a rollout's candidate; its ready URL is its own revision's ("latest" tag).
    """

    def __init__(
        self,
        name: str,
        namespace: str,
        generation: int,
        connection: str = "kubernetes_default",
        timeout_s: float = 600,
        poll_interval_s: float = 5.0,
        canary: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.generation = generation
        self.connection = connection
        self.timeout_s = timeout_s
        self.poll_interval_s = poll_interval_s
        self.canary = canary

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "mlspec.triggers.kserve.KServeReadinessTrigger",
            {
                "name": self.name,
                "namespace": self.namespace,
                "generation": self.generation,
                "connection": self.connection,
                "timeout_s": self.timeout_s,
                "poll_interval_s": self.poll_interval_s,
                "canary": self.canary,
            },
        )

    async def _read(self, hook: Any) -> dict | None:
        from kubernetes_asyncio.client import CustomObjectsApi
        from kubernetes_asyncio.client.exceptions import ApiException

        async with hook.get_conn() as api_client:
            try:
                return await CustomObjectsApi(api_client).get_namespaced_custom_object(
                    group=GROUP, version=VERSION, plural=PLURAL, namespace=self.namespace, name=self.name
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        hook = AsyncKubernetesHook(conn_id=self.connection)
        deadline = time.monotonic() + float(self.timeout_s)
        where = f"InferenceService {self.namespace}/{self.name}"
        last = "no status read yet"
        while True:
            try:
                isvc = await self._read(hook)
            except Exception as exc:  # API or network hiccup: not a verdict, keep polling until the deadline
                isvc, last = {}, f"could not read {where}: {type(exc).__name__}: {exc}"
                log.warning("%s", last)
            if isvc is None:
                yield TriggerEvent({"status": "failed", "url": None, "message": f"{where} disappeared"})
                return
            if isvc:
                outcome, detail = check_readiness(isvc, int(self.generation), canary=self.canary)
                if outcome == "ready":
                    yield TriggerEvent({"status": "ready", "url": detail, "message": f"{where} is ready"})
                    return
                if outcome == "failed":
                    yield TriggerEvent({"status": "failed", "url": None, "message": detail})
                    return
                if detail != last:
                    log.info("%s: %s", where, detail)
                last = detail
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                message = f"not ready within {float(self.timeout_s):g}s; last status: {last}"
                yield TriggerEvent({"status": "timeout", "url": None, "message": message})
                return
            await asyncio.sleep(min(float(self.poll_interval_s), remaining))
