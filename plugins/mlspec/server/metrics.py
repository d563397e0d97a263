"""The model server's Prometheus metrics (`GET /metrics`), one CollectorRegistry per server.

Each loaded version has a VersionStats: plain counters that the app bumps on its event-loop thread
(an answer is counted once it is computed, on the loop, whether it ran inline or in the pool), so
the request path takes no lock and builds no label tuple. The registry's collector turns them into
metric families when scraped. Shadow counters are bumped by the shadow worker too, under their own
lock. Stats are kept per (model, version) for the life of the process: a version unloaded and loaded
again keeps counting where it was, so the counters stay monotonic.

Names come from mlspec.vocabulary (METRIC_*); the rollout gates read the same names.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from mlspec.vocabulary import (
    LATENCY_BUCKETS_S,
    METRIC_CLASSES,
    METRIC_LATENCY,
    METRIC_PREDICTION,
    METRIC_REQUESTS,
    METRIC_ROWS,
    METRIC_SHADOW_LATENCY,
    METRIC_SHADOW_PERCENT,
    METRIC_SHADOW_REQUESTS,
    METRIC_SHADOW_ROWS,
    METRIC_START_TIME,
    METRIC_TRAFFIC,
    OUTPUTS,
    SHADOW_OUTCOMES,
    SHADOW_RESULTS,
)

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# A regression's answers spread over orders of magnitude of either sign, unknown to the server. With buckets
# below zero the exposition has no _sum or _count (OpenMetrics); the +Inf bucket is the count.
PREDICTION_BUCKETS = tuple([-(10.0**e) for e in range(6, -3, -1)] + [0.0] + [10.0**e for e in range(-2, 7)])
_LABEL, _PREDICTION = OUTPUTS["classification"][1], OUTPUTS["regression"][0]


def counted_output(output_names: Iterable[str]) -> tuple[str | None, str | None]:
    """(output, how its answers are counted): `label` -> rows per class, `prediction` -> a histogram; a model
    with neither (no mlspec export) -> (None, None)."""
    names = set(output_names)
    if _LABEL in names:
        return _LABEL, "label"
    if _PREDICTION in names:
        return _PREDICTION, "histogram"
    return None, None


def class_namer(schemas: dict, signature: dict):
    """value -> class name: the published class names (output_schema.json, else signature.json) by index,
    or the value itself where `label` answers the class value (label_datatype published)."""
    output_schema = schemas.get("output_schema") or {}
    names = [str(c) for c in output_schema.get("class_names") or signature.get("class_names") or []]
    answers_value = bool(output_schema.get("label_datatype"))

    def name(value: Any) -> str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if answers_value or isinstance(value, str):
            return str(value)
        index = int(value)
        return names[index] if 0 <= index < len(names) else str(value)

    return name


class VersionStats:
    """The counters of one model version: live ones on the event loop only, shadow ones under a lock."""

    __slots__ = (
        "model", "version", "ok", "codes", "latency", "latency_sum", "rows", "output", "mode", "classes",
        "predictions", "namer", "shadow_lock", "shadow_requests", "shadow_rows",
        "shadow_latency", "shadow_latency_sum",
    )  # fmt: skip

    def __init__(self, model: str, version: str, output_names: Iterable[str], namer) -> None:
        self.model, self.version = model, version
        self.ok = 0  # 200 answers (the common case, kept out of the dict)
        self.codes: dict[int, int] = {}  # other HTTP statuses
        self.latency = [0] * (len(LATENCY_BUCKETS_S) + 1)  # per bucket, the last one +Inf (not cumulative)
        self.latency_sum = 0.0
        self.rows = 0
        self.output, self.mode = counted_output(output_names)
        self.classes: dict[Any, int] = {}  # raw label value -> rows
        self.predictions = [0] * (len(PREDICTION_BUCKETS) + 1)
        self.namer = namer
        self.shadow_lock = threading.Lock()
        self.shadow_requests: dict[tuple[str, str], int] = {}  # (primary, outcome) -> copies
        self.shadow_rows: dict[tuple[str, str], int] = {}  # (primary, result) -> rows
        self.shadow_latency = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.shadow_latency_sum = 0.0

    # -- live answers (event-loop thread) -------------------------------------------------------
    def answered(self, seconds: float, rows: int, results: dict) -> None:
        self.ok += 1
        self.latency[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum += seconds
        self.rows += rows
        if self.mode is None:
            return
        values = results.get(self.output)
        if values is None:
            return
        if self.mode == "histogram":
            flat = np.asarray(values, dtype=np.float64).reshape(-1)
            for index, count in enumerate(np.bincount(np.searchsorted(PREDICTION_BUCKETS, flat))):
                self.predictions[index] += int(count)
            return
        if values.size == 1:
            key = values.item()
            self.classes[key] = self.classes.get(key, 0) + 1
            return
        keys, counts = np.unique(values.reshape(-1), return_counts=True)
        for key, count in zip(keys.tolist(), counts.tolist(), strict=True):
            self.classes[key] = self.classes.get(key, 0) + count

    def failed(self, code: int, seconds: float | None) -> None:
        """Counted by code; only a server error's time (5xx once the work began, `seconds` given) is a
        latency: a refusal (4xx, or 503 before the body is read) is fast and would pull the p95 down."""
        self.codes[code] = self.codes.get(code, 0) + 1
        if code < 500 or seconds is None:
            return
        self.latency[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum += seconds

    # -- shadow copies (worker thread, and the loop for drops) ----------------------------------
    def shadow_outcome(self, primary: str, outcome: str, seconds: float | None = None) -> None:
        with self.shadow_lock:
            key = (primary, outcome)
            self.shadow_requests[key] = self.shadow_requests.get(key, 0) + 1
            if seconds is not None:
                self.shadow_latency[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
                self.shadow_latency_sum += seconds

    def shadow_compared(self, primary: str, agree: int, disagree: int) -> None:
        with self.shadow_lock:
            for result, rows in zip(SHADOW_RESULTS, (agree, disagree), strict=True):
                key = (primary, result)
                self.shadow_rows[key] = self.shadow_rows.get(key, 0) + rows


def _cumulative(counts: list[int], bounds: tuple[float, ...]) -> list[tuple[str, int]]:
    buckets, total = [], 0
    for bound, count in zip(bounds, counts, strict=False):
        total += count
        buckets.append((repr(float(bound)), total))
    buckets.append(("+Inf", total + counts[-1]))
    return buckets


class ServerMetrics:
    """Per-version stats and the server's CollectorRegistry (H3's request log counters register there too)."""

    def __init__(self, repository) -> None:
        self.repository = repository
        # When this server's counters began (unix seconds): a gate that sees it change knows the counters
        # started again from zero (a restart), which a quiet step cannot tell from a counter that only rose.
        self.started = time.time()
        self.registry = CollectorRegistry(auto_describe=False)
        self._stats: dict[tuple[str, str], VersionStats] = {}
        self._lock = threading.Lock()
        self.registry.register(_Collector(self))

    def stats(self, loaded) -> VersionStats:
        """The version's stats (made at first use, kept for the life of the process), attached to it."""
        stats = loaded.stats
        if stats is None:
            key = (loaded.name, loaded.version)
            with self._lock:
                stats = self._stats.get(key)
                if stats is None:
                    stats = VersionStats(
                        loaded.name, loaded.version, loaded.output_names,
                        class_namer(loaded.schemas, loaded.signature),
                    )  # fmt: skip
                    self._stats[key] = stats
            loaded.stats = stats
        return stats

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def all_stats(self) -> list[VersionStats]:
        for loaded in self.repository.loaded_versions():  # every loaded version has its series from the start
            self.stats(loaded)
        with self._lock:
            return [self._stats[key] for key in sorted(self._stats)]


class _Collector:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        labels = ["model", "version"]
        requests = CounterMetricFamily(
            METRIC_REQUESTS, "Live requests a version answered, by HTTP status", labels=[*labels, "code"]
        )
        latency = HistogramMetricFamily(
            METRIC_LATENCY,
            "Seconds from a live request's body read to its answer (refusals, 4xx, not observed)",
            labels=labels,
        )
        rows = CounterMetricFamily(METRIC_ROWS, "Rows (batch entries) a version answered", labels=labels)
        classes = CounterMetricFamily(
            METRIC_CLASSES, "Answered rows by predicted class", labels=[*labels, "output", "class"]
        )
        predictions = HistogramMetricFamily(
            METRIC_PREDICTION, "A regression's answered values", labels=[*labels, "output"]
        )
        shadow_requests = CounterMetricFamily(
            METRIC_SHADOW_REQUESTS,
            "Copies of live requests the shadow version got",
            labels=[*labels, "primary", "outcome"],
        )
        shadow_rows = CounterMetricFamily(
            METRIC_SHADOW_ROWS,
            "Rows compared between the shadow and the answering version",
            labels=[*labels, "primary", "result"],
        )
        shadow_latency = HistogramMetricFamily(
            METRIC_SHADOW_LATENCY, "Seconds a shadow copy took (decode and run)", labels=labels
        )
        traffic = GaugeMetricFamily(
            METRIC_TRAFFIC, "Share of live requests routed to the version", labels=labels
        )
        shadow_percent = GaugeMetricFamily(
            METRIC_SHADOW_PERCENT, "Share of live requests copied to the version", labels=labels
        )

        shadows: dict[tuple[str, str], list[str]] = {}
        for model, shadow, primary in sorted(self.metrics.repository.shadow_pairs()):
            shadows.setdefault((model, shadow), []).append(primary)
        for stats in self.metrics.all_stats():
            key = [stats.model, stats.version]
            requests.add_metric([*key, "200"], stats.ok)
            for code, count in sorted(stats.codes.items()):
                requests.add_metric([*key, str(code)], count)
            latency.add_metric(key, _cumulative(stats.latency, LATENCY_BUCKETS_S), stats.latency_sum)
            rows.add_metric(key, stats.rows)
            if stats.mode == "histogram":
                predictions.add_metric(
                    [*key, stats.output],
                    _cumulative(stats.predictions, PREDICTION_BUCKETS),
                    None,  # no _sum and _count: buckets below 0 (the +Inf bucket counts)
                )
            elif stats.mode is not None:
                by_name: dict[str, int] = {}
                for value, count in list(stats.classes.items()):
                    name = stats.namer(value)
                    by_name[name] = by_name.get(name, 0) + count
                for name, count in sorted(by_name.items()):
                    classes.add_metric([*key, stats.output, name], count)
            with stats.shadow_lock:
                outcomes = dict(stats.shadow_requests)
                results = dict(stats.shadow_rows)
                shadow_buckets, shadow_sum = list(stats.shadow_latency), stats.shadow_latency_sum
            # Zero series before the first copy: a gate reading Prometheus' increase() needs the zero.
            for primary in shadows.get((stats.model, stats.version), ()):
                for outcome in SHADOW_OUTCOMES:
                    outcomes.setdefault((primary, outcome), 0)
                for result in SHADOW_RESULTS:
                    results.setdefault((primary, result), 0)
            for (primary, outcome), count in sorted(outcomes.items()):
                shadow_requests.add_metric([*key, primary, outcome], count)
            for (primary, result), count in sorted(results.items()):
                shadow_rows.add_metric([*key, primary, result], count)
            if outcomes:
                shadow_latency.add_metric(key, _cumulative(shadow_buckets, LATENCY_BUCKETS_S), shadow_sum)
        for model, version, share, shadow in self.metrics.repository.traffic_percents():
            traffic.add_metric([model, version], share)
            shadow_percent.add_metric([model, version], shadow)
        started = GaugeMetricFamily(
            METRIC_START_TIME, "When the model server started, in unix seconds (its counters began then)"
        )
        started.add_metric([], self.metrics.started)
        yield from (
            started, requests, latency, rows, classes, predictions, shadow_requests, shadow_rows,
            shadow_latency, traffic, shadow_percent,
        )  # fmt: skip
