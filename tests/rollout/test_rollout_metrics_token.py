"""The gates read /metrics of a server started with `--auth token` (which wants the token there too): the source
built from the spec sends the token deploy sends; without it the read fails with the server's 401."""

from __future__ import annotations

import pytest
from tests.rollout.rollout_testkit import SPEC

from mlspec.rollout.metrics import MetricsUnavailable, ServerMetrics, metrics_source
from mlspec.server.app import ServerConfig
from mlspec.spec import load_spec_text
from mlspec.vocabulary import METRIC_START_TIME


def test_a_token_server_s_metrics_are_read_with_the_token_deploy_sends(start_server, tmp_path):
    server = start_server(config=ServerConfig(allow_roots=(tmp_path.as_uri(),), auth="token"))
    spec = load_spec_text(SPEC + "rollout: {canary: {steps: [100], bake: 1s}}\n", "rollout.yaml")

    with pytest.raises(MetricsUnavailable, match="401"):
        ServerMetrics(server.url).snapshot(spec.name)
    snapshot = metrics_source(spec, server.url).snapshot(spec.name)
    assert any(name == METRIC_START_TIME for name, _ in snapshot)
