"""Stop-condition probes: one sample per call, and the rule that turns samples into a breach.

HTTP probe: the sample is the latency in ms. It is breached by a status outside ``expect_status``, a latency
above ``max_latency_ms``, or no answer within ``timeout_seconds`` (slowness is what such probes watch for).
Prometheus probe: an instant query (``GET {url}/api/v1/query?query=…``); the sample is the first result's
value, breached above ``max`` or below ``min``.
Alerts probe: Alertmanager's active, unsilenced, uninhibited alerts matching the matchers; the sample is how
many there are, breached at one or more (the run's own silences hide the alerts it is expected to fire).

A probe that *errors* (connection refused, DNS, a Prometheus error or empty result, a missing ``${VAR}``)
says nothing about the target, so one error is recorded but tolerated; it counts as a breach only on the
second error in a row (``ERRORS_BEFORE_BREACH``). That absorbs a single network blip without letting a
broken probe hide a real outage for more than one extra interval.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx

from adapters.base import AdapterError, resolve_env
from bot.catalogue.models import AlertsProbe, ChaosToolkitProbe, HttpProbe, PrometheusProbe, StopCondition

ERRORS_BEFORE_BREACH = 2


@dataclass(frozen=True)
class Sample:
    """One probe result. ``error`` means the probe itself failed (the target's health is unknown)."""

    condition: str
    value: float | None
    ok: bool
    detail: str
    error: bool = False


def take_sample(condition: StopCondition, client: httpx.Client) -> Sample:
    """Probe once. Never raises for a probe failure: that is an error sample."""
    try:
        if isinstance(condition.probe, HttpProbe):
            return _http(condition.name, condition.probe, client)
        if isinstance(condition.probe, AlertsProbe):
            return _alerts(condition.name, condition.probe, client)
        if isinstance(condition.probe, ChaosToolkitProbe):
            return _chaostoolkit(condition.name, condition.probe)
        return _prometheus(condition.name, condition.probe, client)
    except AdapterError as exc:  # a ${VAR} that is not set
        return _error(condition.name, exc.message)


class BreachJudge:
    """Decides, sample by sample, whether a stop condition is breached (see the module docstring)."""

    def __init__(self) -> None:
        self._errors: dict[str, int] = {}

    def breach(self, sample: Sample) -> str | None:
        """The breach reason, or None when the sample is acceptable (or a first error)."""
        if not sample.error:
            self._errors[sample.condition] = 0
            return None if sample.ok else f"stop condition {sample.condition}: {sample.detail}"
        count = self._errors.get(sample.condition, 0) + 1
        self._errors[sample.condition] = count
        if count < ERRORS_BEFORE_BREACH:
            return None
        return f"stop condition {sample.condition}: probe failed {count} times in a row ({sample.detail})"


def _http(name: str, probe: HttpProbe, client: httpx.Client) -> Sample:
    url = str(resolve_env(probe.url))
    started = time.perf_counter()
    try:
        response = client.request(probe.method, url, timeout=probe.timeout_seconds, follow_redirects=False)
    except httpx.TimeoutException:
        limit = probe.timeout_seconds * 1000
        return Sample(name, limit, False, f"no answer within {probe.timeout_seconds:g} s (timeout)")
    except httpx.HTTPError as exc:
        return _error(name, _scrub(f"{type(exc).__name__}: {exc}", url, probe.url))
    latency = (time.perf_counter() - started) * 1000
    if response.status_code not in probe.expect_status:
        return Sample(name, latency, False, f"status {response.status_code} not in expected {probe.expect_status}")
    if probe.max_latency_ms is not None and latency > probe.max_latency_ms:
        return Sample(name, latency, False, f"value {latency:.0f} ms > threshold {probe.max_latency_ms:g} ms")
    return Sample(name, latency, True, f"status {response.status_code}")


def _prometheus(name: str, probe: PrometheusProbe, client: httpx.Client) -> Sample:
    base = str(resolve_env(probe.url))
    url = base.rstrip("/") + "/api/v1/query"
    try:
        response = client.get(url, params={"query": probe.query}, timeout=probe.timeout_seconds)
    except httpx.HTTPError as exc:
        return _error(name, _scrub(f"{type(exc).__name__}: {exc}", base, probe.url))
    value = _instant_value(response)
    if isinstance(value, str):
        return _error(name, value)
    if probe.max is not None and value > probe.max:
        return Sample(name, value, False, f"value {value:g} > threshold {probe.max:g}")
    if probe.min is not None and value < probe.min:
        return Sample(name, value, False, f"value {value:g} < threshold {probe.min:g} (min)")
    return Sample(name, value, True, "")


def _alerts(name: str, probe: AlertsProbe, client: httpx.Client) -> Sample:
    """The number of alerts that would page now; any is a breach (its names in the detail)."""
    from bot.alerting.alertmanager import Alertmanager, AlertmanagerError

    try:
        firing = Alertmanager(probe.url, http=client).firing(probe.matchers)
    except AlertmanagerError as exc:
        return _error(name, str(exc))
    if firing:
        names = ", ".join(sorted({alert.name for alert in firing}))
        return Sample(name, float(len(firing)), False, f"{len(firing)} alert(s) firing: {names}")
    return Sample(name, 0.0, True, "no alert firing")


def _chaostoolkit(name: str, probe: ChaosToolkitProbe) -> Sample:
    from adapters.chaostoolkit import sample_probe

    result = sample_probe(probe.experiment, probe.probe)
    if result.error:
        return _error(name, result.detail)
    return Sample(name, result.value, result.ok, result.detail)


def _instant_value(response: httpx.Response) -> float | str:
    """The first result's value, or a string saying why there is none."""
    if response.status_code != 200:
        return f"Prometheus answered HTTP {response.status_code}"
    try:
        body = response.json()
        data = body["data"]
        if body.get("status") != "success":
            return f"Prometheus query failed: {body.get('error', 'unknown error')}"
        result = data["result"]
        if data.get("resultType") == "scalar":
            raw = result[1]
        elif not result:
            return "the query returned no data"
        else:
            raw = result[0]["value"][1]
        value = float(raw)
    except (ValueError, KeyError, IndexError, TypeError):
        return "Prometheus answer is not an instant-query result"
    if math.isnan(value):
        return "the query returned NaN"
    return value


def _error(name: str, detail: str) -> Sample:
    return Sample(name, None, False, f"probe error: {detail}", error=True)


def _scrub(text: str, resolved: str, template: str) -> str:
    """Show the catalogue's ``${VAR}`` URL, never a resolved one (it may carry a token)."""
    return text.replace(resolved, template) if resolved != template else text
