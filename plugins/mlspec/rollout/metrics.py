"""The live metrics a rollout step's gates read: what the candidate did since the step began.

The model server counts requests, latencies and shadow comparisons per model and version in its /metrics
(names in mlspec.vocabulary). A step takes a snapshot when it starts and reads the window since: the
counters' growth, per series. Two sources give the same numbers:
- ServerMetrics reads the server's /metrics itself (spec `rollout.metrics.source: server`);
- PrometheusMetrics asks a Prometheus server that scrapes it (`source: prometheus`, an Airflow connection),
  for the same series at the first scrape after the step's start and now: what an earlier scrape holds is
  the step before. Not `increase()`: it leaves out a series' first scrape, so a candidate's first requests,
  and a first 5xx whose series appears mid-step, would never count. Only the endpoint's own series: those
  the connection's selector names, else the endpoint's instance (host:port) when Prometheus scrapes it.
A server that restarted within the window (its start-time gauge changed, or a counter went down) counted
anew: the window goes on from the new process's counters.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from mlspec.connections import bearer_token, get_connection
from mlspec.errors import MlspecError, ServingError
from mlspec.serving.credentials import token_for
from mlspec.vocabulary import (
    METRIC_LATENCY,
    METRIC_REQUESTS,
    METRIC_SHADOW_LATENCY,
    METRIC_SHADOW_REQUESTS,
    METRIC_SHADOW_ROWS,
    METRIC_START_TIME,
    ROLLOUT_METRICS_SOURCES,
    SHADOW_OUTCOMES,
    SHADOW_RESULTS,
)

log = logging.getLogger(__name__)

SERVER_SOURCE, PROMETHEUS_SOURCE = ROLLOUT_METRICS_SOURCES
COMPARED, SHADOW_ERROR, DROPPED = SHADOW_OUTCOMES
AGREE, DISAGREE = SHADOW_RESULTS
LATENCY_BUCKETS = (f"{METRIC_LATENCY}_bucket", f"{METRIC_SHADOW_LATENCY}_bucket")
# The series the gates read: counters (their _total samples) and the latency histograms' buckets.
READ = frozenset({METRIC_REQUESTS, METRIC_SHADOW_REQUESTS, METRIC_SHADOW_ROWS, *LATENCY_BUCKETS})
QUANTILE = 0.95

# A series: its sample name and its labels (model, version, ...; from Prometheus also job and instance).
Series = tuple[str, frozenset[tuple[str, str]]]
# The labels Prometheus gives every series of one scraped server: what one start-time gauge speaks for.
TARGET_LABELS = ("job", "instance")
SELECTOR_EXAMPLE = '{"selector": "job=\\"mlspec\\""}'


class MetricsUnavailable(MlspecError):
    """The metrics could not be read (the server or Prometheus did not answer, or answered nonsense)."""


@dataclass(frozen=True)
class StepMetrics:
    """The candidate's traffic in a step's window.

    The candidate's traffic is what it answered live plus the shadow copies it ran (in a shadow step it
    answers no live request; in a canary step under 100 % it gets copies of what production answered too).
    Agreement compares rows both ways: the candidate shadowing production, and production shadowing the
    candidate (canary 100 %).
    """

    requests: int  # candidate live requests + shadow copies compared or errored
    errors: int  # candidate live 5xx + shadow errors
    p95_ms: float | None  # over the candidate's live and shadow latency histograms; None: nothing observed
    agreement: float | None  # agree / (agree + disagree); None: no rows compared
    compared_rows: int
    dropped: int  # shadow copies dropped (the shadow queue was full)

    def to_dict(self) -> dict:
        return asdict(self)


class MetricsSource(ABC):
    @abstractmethod
    def snapshot(self, model: str) -> Any:
        """What a window starts from (the server: its counters now; Prometheus: the time now)."""

    @abstractmethod
    def window(self, model: str, candidate: int, production: int | None, start: Any) -> StepMetrics:
        """What the candidate did since `start` (a snapshot of the same model)."""

    def __init__(self) -> None:
        self._restarts_told: set[tuple[frozenset, float]] = set()

    def grown(self, start: Mapping[Series, float], now: Mapping[Series, float]) -> dict[Series, float]:
        """growth(start, now), saying once per restart that a server restarted within the window."""
        for scope, before, after in restarts(start, now):
            if (scope, after) not in self._restarts_told:
                self._restarts_told.add((scope, after))
                where = "".join(f" {name}={value}" for name, value in sorted(scope))
                log.info("the model server%s restarted at %s (it had started at %s): the window goes on from "
                         "the new process's counters", where, _iso(after), _iso(before))
        return growth(start, now)


class ServerMetrics(MetricsSource):
    """The model server's own /metrics (GET {endpoint}/metrics), with the server's bearer token when one is
    given (`mlspec serve --auth token` wants it there too)."""

    def __init__(self, endpoint_url: str, timeout_s: float = 10, token: str | None = None) -> None:
        super().__init__()
        self.url = endpoint_url.rstrip("/") + "/metrics"
        self.timeout_s = timeout_s
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def snapshot(self, model: str) -> dict[Series, float]:
        try:
            response = httpx.get(self.url, timeout=self.timeout_s, headers=self.headers)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise MetricsUnavailable(f"could not read {self.url}: {exc}") from exc
        try:
            return parse_metrics(response.text, model)
        except ValueError as exc:
            raise MetricsUnavailable(f"{self.url} is not Prometheus text ({exc})") from exc

    def window(self, model: str, candidate: int, production: int | None, start: Any) -> StepMetrics:
        return step_metrics(self.grown(start, self.snapshot(model)), candidate, production)


class PrometheusMetrics(MetricsSource):
    """A Prometheus server that scrapes the model server: the same series, at the first scrape after the
    step's start and now.

    Only the endpoint's series count: `selector` (label matchers such as `job="mlspec"`, from the
    connection's extra) names them; without one, `instance="<host:port of endpoint_url>"` when Prometheus
    has that instance, else every series of the model (said once in the log).
    """

    def __init__(self, base_url: str, timeout_s: float = 10, headers: Mapping[str, str] | None = None,
                 auth: tuple[str, str] | None = None, *, selector: str | None = None,
                 endpoint_url: str | None = None) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.auth = auth
        self.selector = selector.strip().strip("{}").strip() if selector else None
        self.endpoint_instance = instance_of(endpoint_url) if endpoint_url else None
        self._endpoint_matchers: str | None = None  # found at the first window without a selector
        # (model, start, target) -> the target's series at its first scrape after start
        self._baselines: dict[tuple[str, float, frozenset], dict[Series, float]] = {}

    def snapshot(self, model: str) -> float:
        return time.time()

    def window(self, model: str, candidate: int, production: int | None, start: Any) -> StepMetrics:
        start, at = float(start), time.time()
        matchers = self.matchers()
        now = self.series_at(model, at, matchers)
        before: dict[Series, float] = {}
        for target in {target_of(labels) for name, labels in now if name != METRIC_START_TIME}:
            baseline = self.baseline(model, start, at, target, matchers)
            if baseline is None:  # not scraped since the step began: its series wait for a later poll
                now = {key: value for key, value in now.items() if target_of(key[1]) != target}
            else:
                before.update(baseline)
        if not any(name != METRIC_START_TIME for name, _ in now):
            raise MetricsUnavailable(
                f"Prometheus at {self.base_url} has no scrape of model {model!r}'s series "
                f"({matchers or 'no filter'}) since the step began at {_iso(start)}: the window starts at the "
                "first scrape after it, so a step never counts the step before")
        return step_metrics(self.grown(before, now), candidate, production)

    def matchers(self) -> str:
        """The label matchers that keep the endpoint's series (see the class); "" for none."""
        if self.selector is not None:
            return self.selector
        if self._endpoint_matchers is None:
            self._endpoint_matchers = ""
            if self.endpoint_instance:
                instance = f'instance="{_promql_string(self.endpoint_instance)}"'
                if self.query(f"up{{{instance}}}", time.time()):
                    self._endpoint_matchers = instance
                else:
                    log.warning("Prometheus at %s scrapes no instance %s (the endpoint's host:port), so the gates "
                                "read the model's series from every server it scrapes; name the endpoint's series "
                                "in the Prometheus connection's extra: %s", self.base_url, self.endpoint_instance,
                                SELECTOR_EXAMPLE)
        return self._endpoint_matchers

    def baseline(self, model: str, start: float, at: float, target: frozenset, matchers: str
                 ) -> dict[Series, float] | None:
        """`target`'s (job and instance labels) series of the model at its first successful scrape at or
        after `start` (up to `at`); None: not scraped since."""
        key = (model, start, target)
        if key not in self._baselines:
            span_ms = max(1000, math.ceil((at - start) * 1000) + 1000)
            selector = _join(matchers, _label_matchers(target))
            scrapes = [t for series in self.query(f"up{{{selector}}}[{span_ms}ms]", at, kind="matrix")
                       for t, value in _samples(series) if t >= start and value == 1]
            if not scrapes:
                return None
            self._baselines[key] = self.series_at(model, min(scrapes), selector)
        return self._baselines[key]

    def series_at(self, model: str, at: float, matchers: str = "") -> dict[Series, float]:
        """The model's series, and the servers' start times, as Prometheus last scraped them at `at` (within
        its lookback, 5 min)."""
        names = "|".join(sorted(READ))
        selectors = (_join(f'__name__=~"{names}",model="{_promql_string(model)}"', matchers),
                     _join(f'__name__="{METRIC_START_TIME}"', matchers))
        values: dict[Series, float] = {}
        for selector in selectors:
            for series in self.query(f"{{{selector}}}", at):
                labels, (_, value) = _labels(series), _sample(series.get("value"))
                name = labels.pop("__name__", "")
                key = (name, frozenset(labels.items()))
                values[key] = values.get(key, 0.0) + value
        return values

    def query(self, promql: str, at: float, *, kind: str = "vector") -> list[dict]:
        """An instant query's result (GET /api/v1/query): a vector, or a matrix for a range selector."""
        url = f"{self.base_url}/api/v1/query"
        try:
            response = httpx.get(url, params={"query": promql, "time": f"{at:.3f}"}, headers=self.headers,
                                 auth=self.auth, timeout=self.timeout_s)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise MetricsUnavailable(f"could not query Prometheus at {url}: {exc}") from exc
        if not isinstance(body, dict):
            raise MetricsUnavailable(f"Prometheus at {url} answered {response.status_code} to {promql} with "
                                     f"{type(body).__name__} JSON, not an object")
        if response.status_code != 200 or body.get("status") != "success":
            raise MetricsUnavailable(f"Prometheus at {url} answered {response.status_code} to {promql}: "
                                     f"{body.get('error') or body}")
        data = body.get("data")
        found = data.get("resultType") if isinstance(data, dict) else None
        if found != kind:
            raise MetricsUnavailable(f"Prometheus answered {found or 'no resultType'} to {promql}, not a {kind}")
        result = data.get("result")
        if not isinstance(result, list) or not all(isinstance(series, dict) for series in result):
            raise MetricsUnavailable(f"Prometheus answered a {kind} to {promql} whose result is not a list of "
                                     f"series: {str(result)[:200]}")
        return result


def _labels(series: dict) -> dict[str, str]:
    labels = series.get("metric")
    if not isinstance(labels, dict):
        raise MetricsUnavailable(f"a Prometheus series without its labels (metric): {str(series)[:200]}")
    return dict(labels)


def _sample(pair: Any) -> tuple[float, float]:
    """A [unix time, "value"] pair of the query API as numbers."""
    try:
        at, value = pair
        return float(at), float(value)
    except (TypeError, ValueError) as exc:
        raise MetricsUnavailable(f"a Prometheus sample is not [time, \"value\"]: {str(pair)[:200]}") from exc


def _samples(series: dict) -> list[tuple[float, float]]:
    values = series.get("values")
    if not isinstance(values, list):
        raise MetricsUnavailable(f"a Prometheus range series without values: {str(series)[:200]}")
    return [_sample(pair) for pair in values]


def target_of(labels: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """The labels naming the scraped server a series came from (job, instance; none from /metrics itself)."""
    return frozenset((name, value) for name, value in labels if name in TARGET_LABELS)


def instance_of(endpoint_url: str) -> str:
    """The host:port Prometheus names a target by (its instance label), of an endpoint URL."""
    parts = urlsplit(endpoint_url if "://" in endpoint_url else f"http://{endpoint_url}")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _label_matchers(labels: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{_promql_string(value)}"' for name, value in sorted(labels))


def _join(*matchers: str) -> str:
    return ",".join(m for m in matchers if m)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def metrics_source(spec: Any, deployment_endpoint_url: str) -> MetricsSource:
    """Where the spec's gates read: the deployment's own /metrics, or the Prometheus its connection names."""
    settings = spec.rollout.metrics
    if settings.source == PROMETHEUS_SOURCE:
        return prometheus_from_connection(settings.connection, endpoint_url=deployment_endpoint_url)
    return ServerMetrics(deployment_endpoint_url, token=_server_token(spec, deployment_endpoint_url))


def _server_token(spec: Any, endpoint_url: str) -> str | None:
    """The token deploy sends to the endpoint (mlspec.serving.credentials.token_for), or None where the spec's
    connection is for another host (a cluster's): its token never goes elsewhere."""
    try:
        return token_for(endpoint_url, connection_id=spec.serving.connection)
    except ServingError:
        return None


def prometheus_from_connection(connection_id: str, *, endpoint_url: str | None = None) -> PrometheusMetrics:
    """The Airflow connection as a Prometheus base URL: host (or a whole URL), port, schema http|https;
    a token (extra {"token": ...}, or the password without a login) or login/password; the extra's
    "selector" (label matchers, e.g. `job="mlspec"`) names the endpoint's series."""
    used_for = "the rollout gates' Prometheus (rollout.metrics.connection)"
    connection = get_connection(connection_id, used_for=used_for)
    host = (connection.host or "").strip().rstrip("/")
    if not host:
        raise MlspecError(f"Airflow connection {connection_id!r} for {used_for} has no host; "
                          "set its host (and port) to the Prometheus server")
    if "://" not in host:
        host = f"{connection.schema or 'http'}://{host}"
    url = f"{host}:{connection.port}" if connection.port else host
    token = bearer_token(connection)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    auth = (connection.login, connection.password or "") if connection.login else None
    selector = (connection.extra_dejson or {}).get("selector")
    return PrometheusMetrics(url, headers=headers, auth=auth, selector=str(selector) if selector else None,
                             endpoint_url=endpoint_url)


def parse_metrics(text: str, model: str) -> dict[Series, float]:
    """The gates' series of `model`, and the server's start time, in a /metrics page (Prometheus text format)."""
    # prometheus_client takes about 0.1 s to import: only where a page is read, never when a DAG is parsed
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[Series, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name in READ and sample.labels.get("model") == model) or sample.name == METRIC_START_TIME:
                values[(sample.name, frozenset(sample.labels.items()))] = float(sample.value)
    return values


def restarts(start: Mapping[Series, float], now: Mapping[Series, float]) -> list[tuple[frozenset, float, float]]:
    """The servers whose start-time gauge changed from `start` to `now`: (their target labels, the start
    time before, the one now). A server that does not export the gauge is never in it."""
    return [(target_of(labels), start[(name, labels)], value) for (name, labels), value in now.items()
            if name == METRIC_START_TIME and start.get((name, labels), value) != value]


def growth(start: Mapping[Series, float], now: Mapping[Series, float]) -> dict[Series, float]:
    """Each series' growth from `start` to `now`; a series new since the start grew from 0. A series of a
    server that restarted in between (its start time changed, or the counter went down) counted anew since
    the restart: its value now is the growth."""
    restarted = [target for target, _, _ in restarts(start, now)]
    grown = {}
    for key, value in now.items():
        name, labels = key
        if name == METRIC_START_TIME:
            continue
        before = start.get(key, 0.0)
        if any(target <= labels for target in restarted):
            grown[key] = value
        elif value < before:
            log.info("%s%s went down from %g to %g: the model server restarted; counting %g since",
                     name, dict(sorted(labels)), before, value, value)
            grown[key] = value
        else:
            grown[key] = value - before
    return grown


def step_metrics(grown: Mapping[Series, float], candidate: int, production: int | None) -> StepMetrics:
    """The StepMetrics of the candidate from the series' growth over a window."""
    cand, prod = str(candidate), None if production is None else str(production)
    pairs = {(cand, prod), (prod, cand)} if prod is not None else set()
    live = live_errors = shadow = shadow_errors = dropped = agree = disagree = 0.0
    buckets: dict[float, float] = {}
    for (name, label_items), value in grown.items():
        labels = dict(label_items)
        version = labels.get("version")
        if name == METRIC_SHADOW_ROWS:
            if (version, labels.get("primary")) in pairs:
                result = labels.get("result")
                agree += value if result == AGREE else 0.0
                disagree += value if result == DISAGREE else 0.0
        elif version != cand:
            continue
        elif name == METRIC_REQUESTS:
            live += value
            live_errors += value if labels.get("code", "").startswith("5") else 0.0
        elif name == METRIC_SHADOW_REQUESTS:
            outcome = labels.get("outcome")
            shadow += value if outcome in (COMPARED, SHADOW_ERROR) else 0.0
            shadow_errors += value if outcome == SHADOW_ERROR else 0.0
            dropped += value if outcome == DROPPED else 0.0
        elif name in LATENCY_BUCKETS:
            upper = _bucket_bound(name, labels)
            buckets[upper] = buckets.get(upper, 0.0) + value
    p95_s = histogram_quantile(QUANTILE, buckets.items())
    compared = agree + disagree
    return StepMetrics(
        requests=round(live + shadow),
        errors=round(live_errors + shadow_errors),
        p95_ms=None if math.isnan(p95_s) else p95_s * 1000,
        agreement=agree / compared if compared else None,
        compared_rows=round(compared),
        dropped=round(dropped),
    )


def _bucket_bound(name: str, labels: Mapping[str, str]) -> float:
    try:
        return float(labels["le"])
    except (KeyError, ValueError) as exc:
        raise MetricsUnavailable(f"{name}{dict(labels)} has no upper bound (le) that is a number") from exc


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """The q-quantile of a cumulative histogram ((upper bound, count) pairs, +Inf among them), the way
    Prometheus's histogram_quantile estimates it: linear interpolation inside the bucket the rank falls in;
    the highest finite bound when it falls in +Inf; NaN without observations or a +Inf bucket."""
    merged: dict[float, float] = {}
    for upper, count in buckets:
        merged[upper] = merged.get(upper, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    counts, highest = [], 0.0
    for _, count in ordered:  # a count below the one before (scrapes out of step) is read as the one before
        highest = max(highest, count)
        counts.append(highest)
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, count in enumerate(counts[:-1] + [math.inf]) if count >= rank)
    if b == len(ordered) - 1:
        return ordered[-2][0]
    if b == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start, end, count = 0.0, ordered[b][0], counts[b]
    if b > 0:
        start = ordered[b - 1][0]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)

