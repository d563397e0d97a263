"""The gates' metrics (mlspec.rollout.metrics): read from the server's /metrics text, or from a real
Prometheus scraping it, they give the same StepMetrics for the same traffic; p95 is Prometheus's own
histogram_quantile."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
from tests.fixtures.prometheus import prometheus_process, wait_for_scrape
from tests.rollout.rollout_testkit import ServerCounters, rollout_spec

from mlspec.errors import MlspecError
from mlspec.rollout.metrics import (
    MetricsUnavailable,
    PrometheusMetrics,
    ServerMetrics,
    StepMetrics,
    growth,
    histogram_quantile,
    metrics_source,
    parse_metrics,
    step_metrics,
)
from mlspec.vocabulary import METRIC_LATENCY


def window_of(before: str, after: str, model="m", candidate=3, production=2) -> StepMetrics:
    grown = growth(parse_metrics(before, model), parse_metrics(after, model))
    return step_metrics(grown, candidate, production)


def canary_traffic(counters: ServerCounters, model: str = "m") -> None:
    """A canary step at 10 %: candidate 3 answers 42 requests (2 of them 5xx), production 2 answers 358, all
    copied to the candidate (355 run, 5 of them failed, 3 dropped) with 340 of 350 rows agreeing."""
    counters.answer(model, "3", 200, [0.008] * 38 + [0.02] * 2)
    counters.answer(model, "3", 500, [0.001] * 2)
    counters.answer(model, "2", 200, [0.004] * 358)
    counters.shadow(model, "3", "2", compared=350, errors=5, dropped=3, agree=340, disagree=10, seconds=0.009)


EXPECTED = StepMetrics(requests=42 + 355, errors=2 + 5, p95_ms=None, agreement=340 / 350, compared_rows=350,
                       dropped=3)


def test_a_window_counts_the_candidate_live_and_shadowed():
    counters = ServerCounters()
    counters.answer("m", "3", 200, [0.3] * 50)  # before the step: not counted
    counters.answer("other", "3", 500, [0.3] * 50)  # another model: not counted
    before = counters.text()
    canary_traffic(counters)
    window = window_of(before, counters.text())
    assert window == StepMetrics(**{**EXPECTED.to_dict(), "p95_ms": window.p95_ms})
    # 42 live + 355 shadow latencies, 397 in all: rank 377.15 falls in the (0.005, 0.01] bucket
    assert window.p95_ms == pytest.approx(histogram_quantile(0.95, [(0.005, 2), (0.01, 395), (0.025, 397),
                                                                     (math.inf, 397)]) * 1000)


def test_production_shadowing_the_candidate_counts_as_agreement():
    counters = ServerCounters()
    before = counters.text()
    counters.answer("m", "3", 200, [0.002] * 100)  # canary 100 %: the candidate answers all
    counters.shadow("m", "2", "3", compared=100, errors=4, dropped=0, agree=90, disagree=10, seconds=0.5)
    window = window_of(before, counters.text())
    # production's shadow runs and errors are production's, not the candidate's
    assert (window.requests, window.errors, window.agreement, window.compared_rows) == (100, 0, 0.9, 100)
    assert window.p95_ms == pytest.approx(2.425)  # 0.001 + 0.0015 * 95/100 s, in ms


def test_a_first_version_has_nothing_to_agree_with():
    counters = ServerCounters()
    before = counters.text()
    counters.answer("m", "1", 200, [0.002] * 10)
    window = window_of(before, counters.text(), candidate=1, production=None)
    assert (window.requests, window.agreement, window.compared_rows) == (10, None, 0)


def test_a_counter_that_went_down_is_a_restarted_server(caplog):
    old = ServerCounters()
    old.answer("m", "3", 200, [0.002] * 500)
    restarted = ServerCounters()
    restarted.answer("m", "3", 200, [0.002] * 20)
    with caplog.at_level(logging.INFO, logger="mlspec.rollout.metrics"):
        assert window_of(old.text(), restarted.text()).requests == 20
    assert "went down from 500 to 20: the model server restarted; counting 20 since" in caplog.text


def test_p95_is_prometheus_histogram_quantile():
    assert histogram_quantile(0.95, [(0.01, 90), (0.025, 100), (math.inf, 100)]) == pytest.approx(0.0175)
    assert histogram_quantile(0.95, [(0.01, 10), (math.inf, 100)]) == 0.01  # in +Inf: the highest bound
    assert math.isnan(histogram_quantile(0.95, [(0.01, 0), (math.inf, 0)]))  # nothing observed
    assert math.isnan(histogram_quantile(0.95, [(0.01, 5)]))  # no +Inf bucket
    # buckets of two histograms (live and shadow) add up; a bucket lower than the one before reads as it
    assert histogram_quantile(0.5, [(0.01, 1), (0.01, 1), (0.02, 1), (math.inf, 4)]) == pytest.approx(0.01)


def test_an_unreachable_server_is_metrics_unavailable(closed_port):
    with pytest.raises(MetricsUnavailable, match=f"could not read http://127.0.0.1:{closed_port}/metrics"):
        ServerMetrics(f"http://127.0.0.1:{closed_port}", timeout_s=2).snapshot("m")


def test_the_spec_says_where_the_gates_read(monkeypatch):
    server = metrics_source(rollout_spec_holder("server", None), "http://127.0.0.1:8080/")
    assert isinstance(server, ServerMetrics) and server.url == "http://127.0.0.1:8080/metrics"
    monkeypatch.setenv("AIRFLOW_CONN_PROM", json.dumps(
        {"conn_type": "http", "host": "prometheus.internal", "port": 9090, "schema": "https",
         "extra": {"token": "t0k"}}))
    prometheus = metrics_source(rollout_spec_holder("prometheus", "prom"), "http://unused")
    assert isinstance(prometheus, PrometheusMetrics)
    assert prometheus.base_url == "https://prometheus.internal:9090"
    assert prometheus.headers == {"Authorization": "Bearer t0k"}
    with pytest.raises(MlspecError, match="connection 'prom_missing' for the rollout gates' Prometheus"):
        metrics_source(rollout_spec_holder("prometheus", "prom_missing"), "http://unused")


def rollout_spec_holder(source: str, connection: str | None):
    class Spec:
        rollout = rollout_spec(source=source, connection=connection)
        serving = SimpleNamespace(connection=None)  # the server source sends the token deploy would send

    return Spec()


def test_a_restarted_server_counts_from_its_new_process(caplog):
    """A restart whose counters rose past the old ones: the start-time gauge tells, not the counters."""
    old = ServerCounters(started=1000.0)
    old.answer("m", "3", 200, [0.002] * 500)
    restarted = ServerCounters(started=2000.0)
    restarted.answer("m", "3", 200, [0.002] * 580)
    restarted.answer("m", "3", 500, [0.002] * 20)
    with caplog.at_level(logging.INFO, logger="mlspec.rollout.metrics"):
        source = ServerMetrics("http://unused")
        before, now = parse_metrics(old.text(), "m"), parse_metrics(restarted.text(), "m")
        window = step_metrics(source.grown(before, now), 3, 2)
        assert step_metrics(source.grown(before, now), 3, 2) == window  # said once, read at every poll
    assert (window.requests, window.errors) == (600, 20)
    assert caplog.text.count("the model server restarted at 1970-01-01T00:33:20Z (it had started at "
                             "1970-01-01T00:16:40Z): the window goes on from the new process's counters") == 1
    # without the gauge (a server before it), the counters' growth as before
    unmarked = ServerCounters()
    unmarked.answer("m", "3", 200, [0.002] * 600)
    assert window_of(ServerCounters().text(), unmarked.text()).requests == 600
    assert window_of(old.text(), old.text()).requests == 0


def test_a_bucket_without_a_bound_is_metrics_unavailable():
    page = 'mlspec_request_duration_seconds_bucket{model="m",version="3"} 4\n'
    with pytest.raises(MetricsUnavailable, match="has no upper bound"):
        window_of("", page)


# --------------------------------------------------------------------------- a real Prometheus


class Exporter:
    """An HTTP server on loopback answering every GET with `page()` (a /metrics page, a canned JSON answer);
    a test changes `page` to restart the server it stands for."""

    def __init__(self, page) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        exporter = self
        self.page = page

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = exporter.page().encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.http.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """Two exporters of the server's metric names (two model servers) and a real Prometheus scraping both every
    second: (counters of the first, its target, Prometheus's URL, the second exporter)."""
    counters = ServerCounters()
    first = Exporter(counters.text)
    second = Exporter(ServerCounters().text)
    try:
        with prometheus_process(tmp_path_factory.mktemp("prometheus"), [first.target, second.target]) as url:
            wait_for_scrape(url, first.target)
            wait_for_scrape(url, second.target)
            yield counters, first.target, url, second
    finally:
        first.close()
        second.close()


def test_p95_is_what_promql_says_on_the_same_buckets(scraped):
    counters, target, url, _ = scraped
    spread = [0.0003, 0.0007, 0.002, 0.004, 0.03, 0.07, 0.2, 0.4, 0.9, 3, 12]  # 12 s: over the last bound
    counters.answer("quantiles", "7", 200, spread * 9)
    wait_for_scrape(url, target, after=time.time())
    ours = parse_metrics(counters.text(), "quantiles")
    buckets = [(float(dict(labels)["le"]), v) for (name, labels), v in ours.items()
               if name == f"{METRIC_LATENCY}_bucket"]
    for q in (0.1, 0.5, 0.9, 0.95, 0.99):
        promql = f'histogram_quantile({q}, sum by (le) ({METRIC_LATENCY}_bucket{{model="quantiles"}}))'
        answer = httpx.get(f"{url}/api/v1/query", params={"query": promql}).json()["data"]["result"]
        assert histogram_quantile(q, buckets) == pytest.approx(float(answer[0]["value"][1]), rel=1e-12), q


def test_prometheus_and_the_server_give_the_same_step_metrics(scraped):
    counters, target, url, _ = scraped
    exporter = ServerMetrics(f"http://{target}")
    prometheus = PrometheusMetrics(url, endpoint_url=f"http://{target}")
    counters.answer("same", "3", 200, [0.3] * 50)  # before the step
    from_prometheus = prometheus.snapshot("same")
    # the window starts at the first scrape after the step's start: what the server counted before it is
    # the step before, never this one's
    wait_for_scrape(url, target, after=from_prometheus)
    from_server = exporter.snapshot("same")
    canary_traffic(counters, "same")  # the 5xx series of the candidate appears during the step
    wait_for_scrape(url, target, after=time.time())
    server_window = exporter.window("same", 3, 2, from_server)
    assert prometheus.window("same", 3, 2, from_prometheus) == server_window
    assert server_window == StepMetrics(**{**EXPECTED.to_dict(), "p95_ms": server_window.p95_ms})


def test_the_step_before_never_leaks_into_a_prometheus_window(scraped):
    counters, target, url, _ = scraped
    prometheus = PrometheusMetrics(url, endpoint_url=f"http://{target}")
    wait_for_scrape(url, target, after=time.time())
    counters.answer("leak", "3", 500, [0.2] * 30)  # the step before, after its last scrape
    start = prometheus.snapshot("leak")
    with pytest.raises(MetricsUnavailable, match="has no scrape of model 'leak'.s series .instance=.* since the step"):
        prometheus.window("leak", 3, 2, start + 30)  # nothing scraped after that start yet
    wait_for_scrape(url, target, after=start)
    counters.answer("leak", "3", 200, [0.002] * 12)  # this step
    wait_for_scrape(url, target, after=time.time())
    window = prometheus.window("leak", 3, 2, start)
    assert (window.requests, window.errors) == (12, 0)


def test_prometheus_reads_only_the_endpoint_s_server(scraped, caplog, monkeypatch):
    counters, target, url, second = scraped
    other = ServerCounters()
    other.answer("mixed", "3", 200, [0.002] * 7)
    second.page = other.text
    start = time.time()
    for where in (target, second.target):
        wait_for_scrape(url, where, after=start)
    counters.answer("mixed", "3", 200, [0.002] * 5)
    other.answer("mixed", "3", 200, [0.002] * 7)
    for where in (target, second.target):
        wait_for_scrape(url, where, after=time.time())

    def requests(**where) -> int:
        return PrometheusMetrics(url, **where).window("mixed", 3, 2, start).requests

    assert requests(endpoint_url=f"http://{target}/") == 5  # its instance, when Prometheus scrapes it
    assert requests(selector=f'{{instance="{second.target}"}}') == 7  # the connection's selector
    assert requests(selector='job="mlspec"') == 12  # both servers are in job mlspec
    unscraped = PrometheusMetrics(url, endpoint_url="http://127.0.0.1:9")
    with caplog.at_level(logging.WARNING, logger="mlspec.rollout.metrics"):
        assert unscraped.window("mixed", 3, 2, start).requests == 12  # no filter then, said once
        assert unscraped.window("mixed", 3, 2, start).requests == 12
    assert caplog.text.count("scrapes no instance 127.0.0.1:9 (the endpoint's host:port)") == 1
    assert '{"selector": "job=\\"mlspec\\""}' in caplog.text
    monkeypatch.setenv("AIRFLOW_CONN_PROM_SELECT", json.dumps(
        {"conn_type": "http", "host": url, "extra": {"selector": f'instance="{second.target}"'}}))
    spec = rollout_spec_holder("prometheus", "prom_select")
    assert metrics_source(spec, f"http://{target}").window("mixed", 3, 2, start).requests == 7


def test_a_server_restart_is_seen_through_prometheus(scraped, caplog):
    _, _, url, second = scraped
    old = ServerCounters(started=1000.0)
    old.answer("boot", "3", 200, [0.002] * 500)
    second.page = old.text
    wait_for_scrape(url, second.target, after=time.time())
    start = time.time()
    wait_for_scrape(url, second.target, after=start)
    from_server = ServerMetrics(f"http://{second.target}").snapshot("boot")
    new = ServerCounters(started=2000.0)  # the process restarted and counted past the old one's counters
    new.answer("boot", "3", 200, [0.002] * 590)
    new.answer("boot", "3", 503, [0.002] * 10)
    second.page = new.text
    wait_for_scrape(url, second.target, after=time.time())
    with caplog.at_level(logging.INFO, logger="mlspec.rollout.metrics"):
        through_prometheus = PrometheusMetrics(url, endpoint_url=f"http://{second.target}").window("boot", 3, 2, start)
    assert (through_prometheus.requests, through_prometheus.errors) == (600, 10)
    assert f"the model server instance={second.target} job=mlspec restarted at 1970-01-01T00:33:20Z" in caplog.text
    assert ServerMetrics(f"http://{second.target}").window("boot", 3, 2, from_server) == through_prometheus


def test_a_prometheus_error_is_metrics_unavailable(scraped):
    url = scraped[2]
    with pytest.raises(MetricsUnavailable, match="answered 400"):
        PrometheusMetrics(url).query("sum(", 0)


@pytest.mark.parametrize(("answer", "message"), [
    ([], "answered 200 to .* with list JSON, not an object"),
    ({"status": "success"}, "answered no resultType to"),
    ({"status": "success", "data": {"resultType": "vector"}}, "whose result is not a list of series"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "2"]}]}},
     "a Prometheus series without its labels"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"instance": "a"}, "value": [1]}]}},
     r"a Prometheus sample is not \[time, \"value\"\]: \[1\]"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "x"]}]}},
     "a Prometheus sample is not"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "answered matrix to .*, not a vector"),
])
def test_a_malformed_prometheus_answer_is_metrics_unavailable(answer, message):
    fake = Exporter(lambda: json.dumps(answer))
    try:
        with pytest.raises(MetricsUnavailable, match=message):
            PrometheusMetrics(f"http://{fake.target}").window("m", 3, 2, 0)
    finally:
        fake.close()
