"""Probe samples against the lab target and a lab Prometheus, and the two-errors-in-a-row rule."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.catalogue.models import StopCondition
from bot.catalogue.thresholds import threshold_text
from bot.engine.probes import BreachJudge, Sample, take_sample
from tests.engine.lab import Lab, vector


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def http_probe(url: str, **probe: object) -> StopCondition:
    return StopCondition.model_validate({"name": "api", "probe": {"kind": "http", "url": url, **probe}})


def prometheus(lab: Lab, **probe: object) -> StopCondition:
    spec = {"kind": "prometheus", "url": f"{lab.url}/prom", "query": "sum(errors)", **probe}
    return StopCondition.model_validate({"name": "errors", "probe": spec})


def test_http_sample_is_latency_and_ok_within_thresholds(lab: Lab, client: httpx.Client) -> None:
    sample = take_sample(http_probe(f"{lab.url}/target", max_latency_ms=500), client)
    assert sample.ok and not sample.error and sample.value is not None and 0 < sample.value < 500


def test_http_breaches_on_latency_status_and_timeout(lab: Lab, client: httpx.Client) -> None:
    lab.fault_on, lab.when_faulted, lab.slow_ms = True, "slow", 150
    slow = take_sample(http_probe(f"{lab.url}/target", max_latency_ms=100), client)
    timed_out = take_sample(http_probe(f"{lab.url}/target", timeout_seconds=0.05), client)
    lab.when_faulted = "error"
    bad = take_sample(http_probe(f"{lab.url}/target"), client)

    assert not slow.ok and slow.value is not None and slow.value >= 150
    assert slow.detail == f"value {slow.value:.0f} ms > threshold 100 ms"
    assert not timed_out.ok and not timed_out.error and timed_out.value == 50
    assert timed_out.detail == "no answer within 0.05 s (timeout)"
    assert not bad.ok and bad.detail == "status 503 not in expected [200]"


def test_a_probe_error_breaches_only_the_second_time_in_a_row(client: httpx.Client) -> None:
    condition = http_probe("http://127.0.0.1:1/health")
    judge = BreachJudge()

    first = take_sample(condition, client)
    assert first.error and not first.ok and first.detail.startswith("probe error: ConnectError")
    assert judge.breach(first) is None
    assert judge.breach(Sample("api", 12.0, True, "")) is None  # a good sample resets the count
    assert judge.breach(first) is None
    assert judge.breach(first) == f"stop condition api: probe failed 2 times in a row ({first.detail})"


def test_probe_urls_resolve_env_references_at_call_time(
    lab: Lab, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    condition = http_probe("${LAB_URL}/target")
    monkeypatch.delenv("LAB_URL", raising=False)
    missing = take_sample(condition, client)
    monkeypatch.setenv("LAB_URL", lab.url)

    assert missing.error and "LAB_URL is not set" in missing.detail
    assert take_sample(condition, client).ok


def test_prometheus_sample_is_the_first_value_compared_with_max_and_min(lab: Lab, client: httpx.Client) -> None:
    lab.prom_body = vector(3)
    above = take_sample(prometheus(lab, max=0), client)
    below = take_sample(prometheus(lab, min=5), client)
    within = take_sample(prometheus(lab, min=1, max=5), client)
    lab.prom_body = {"status": "success", "data": {"resultType": "scalar", "result": [0, "0.5"]}}
    scalar = take_sample(prometheus(lab, max=1), client)

    assert (above.value, above.ok, above.detail) == (3, False, "value 3 > threshold 0")
    assert (below.ok, below.detail) == (False, "value 3 < threshold 5 (min)")
    assert within.ok and scalar.ok and scalar.value == 0.5
    assert threshold_text(prometheus(lab, min=1, max=5)) == "≥ 1 and ≤ 5"


def test_prometheus_without_data_is_a_probe_error(lab: Lab, client: httpx.Client) -> None:
    lab.prom_body = {"status": "success", "data": {"resultType": "vector", "result": []}}
    sample = take_sample(prometheus(lab, max=0), client)
    assert sample.error and sample.detail == "probe error: the query returned no data"
