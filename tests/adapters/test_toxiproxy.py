"""The toxiproxy adapter against a fake Toxiproxy HTTP API that keeps proxies and toxics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.base import AdapterError, AdapterParamsError, FaultHandle, FaultState, MissingSecretError
from adapters.toxiproxy import ToxiproxyAdapter
from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, closed_port_url, not_found, running

RUN = "RUN-3"
MINUTE = timedelta(seconds=60)
TOXIC_FIELDS = {"name", "type", "stream", "toxicity", "attributes"}


class FakeToxiproxy(FakeBackend):
    """The documented endpoints: ``/proxies``, ``/proxies/{p}``, ``/proxies/{p}/toxics[/{t}]``."""

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.proxies: dict[str, dict[str, Any]] = {
            name: {"name": name, "listen": "127.0.0.1:0", "upstream": f"{name}:1", "enabled": True, "toxics": []}
            for name in ("redis", "postgres")
        }

    def route(self, call: Call) -> Reply:
        parts = call.path.strip("/").split("/")
        if parts == ["proxies"] and call.method == "GET":
            return Reply(200, self.proxies)
        proxy = self.proxies.get(parts[1]) if len(parts) > 1 else None
        if proxy is None:
            return not_found("proxy not found")
        if len(parts) == 2:
            return self._proxy(call, proxy)
        return self._toxics(call, proxy, parts[3] if len(parts) == 4 else None)

    def _proxy(self, call: Call, proxy: dict[str, Any]) -> Reply:
        if call.method == "POST":
            proxy["enabled"] = bool(call.body["enabled"])
        return Reply(200, proxy)

    def _toxics(self, call: Call, proxy: dict[str, Any], name: str | None) -> Reply:
        toxics = proxy["toxics"]
        found = next((toxic for toxic in toxics if toxic["name"] == name), None)
        if name is None and call.method == "POST":
            if set(call.body) != TOXIC_FIELDS:
                return Reply(400, {"error": "bad toxic"})
            if any(toxic["name"] == call.body["name"] for toxic in toxics):
                return Reply(409, {"error": "toxic already exists", "status": 409})
            toxics.append(call.body)
            return Reply(200, call.body)
        if name is None:
            return Reply(200, toxics)
        if found is None:
            return not_found("toxic not found")
        if call.method == "DELETE":
            toxics.remove(found)
            return Reply(204)
        return Reply(200, found)


@pytest.fixture(scope="module")
def toxiproxy() -> Iterator[RunningServer]:
    with running(FakeToxiproxy()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(toxiproxy: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    toxiproxy.backend.reset()
    monkeypatch.setenv("TOXIPROXY_URL", toxiproxy.url)


def params(**overrides: Any) -> dict[str, Any]:
    base = {
        "api_url": "${TOXIPROXY_URL}",
        "proxy": "redis",
        "toxic": "latency",
        "attributes": {"latency": 500, "jitter": 50},
        "backoff_seconds": 0.01,
    }
    return base | overrides


def started(raw: dict[str, Any]) -> tuple[ToxiproxyAdapter, Any, FaultHandle]:
    adapter = ToxiproxyAdapter()
    p = ToxiproxyAdapter.validate(raw)
    handle = adapter.inject(p, adapter.prepare(p, run_id=RUN, duration=MINUTE), duration=MINUTE)
    return adapter, p, handle


def redis_toxics(server: RunningServer) -> list[dict[str, Any]]:
    return server.backend.proxies["redis"]["toxics"]


def test_inject_adds_a_named_toxic_and_revert_removes_it(toxiproxy: RunningServer) -> None:
    adapter, p, handle = started(params())
    assert redis_toxics(toxiproxy) == [
        {
            "name": f"chaosbot-{RUN}",
            "type": "latency",
            "stream": "downstream",
            "toxicity": 1.0,
            "attributes": {"latency": 500, "jitter": 50},
        }
    ]
    assert handle.expires_at is None and not ToxiproxyAdapter.self_expiring
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, handle)
    assert redis_toxics(toxiproxy) == []
    assert adapter.status(p, handle).state is FaultState.REVERTED


def test_inject_twice_and_revert_twice_are_fine(toxiproxy: RunningServer) -> None:
    adapter, p, handle = started(params())
    adapter.inject(p, handle, duration=MINUTE)
    assert len(redis_toxics(toxiproxy)) == 1
    restored = FaultHandle.from_json(json.loads(json.dumps(handle.to_json())))
    ToxiproxyAdapter().revert(p, restored)
    ToxiproxyAdapter().revert(p, restored)
    assert redis_toxics(toxiproxy) == []


def test_down_mode_disables_then_re_enables_the_proxy(toxiproxy: RunningServer) -> None:
    adapter, p, handle = started(params(mode="down", toxic=None, attributes={}))
    assert toxiproxy.backend.proxies["redis"]["enabled"] is False
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, handle)
    adapter.revert(p, handle)
    assert toxiproxy.backend.proxies["redis"]["enabled"] is True
    assert adapter.status(p, handle).state is FaultState.REVERTED


def test_server_errors_are_retried_then_succeed(toxiproxy: RunningServer) -> None:
    toxiproxy.backend.fail_next(502, 503)
    started(params())
    assert len(toxiproxy.backend.calls_to("POST", "/proxies/redis/toxics")) == 3
    assert len(redis_toxics(toxiproxy)) == 1


def test_halt_all_removes_only_chaosbot_toxics_from_every_proxy(toxiproxy: RunningServer) -> None:
    started(params())
    other = {"name": "kept", "type": "latency", "stream": "upstream", "toxicity": 1.0, "attributes": {}}
    toxiproxy.backend.proxies["postgres"]["toxics"].extend([dict(other, name="chaosbot-RUN-9"), other])
    ToxiproxyAdapter().halt_all(ToxiproxyAdapter.validate(params()))
    assert redis_toxics(toxiproxy) == []
    assert toxiproxy.backend.proxies["postgres"]["toxics"] == [other]


def test_handle_holds_no_resolved_values(toxiproxy: RunningServer) -> None:
    _, _, handle = started(params())
    assert toxiproxy.url not in json.dumps(handle.to_json())


def test_missing_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOXIPROXY_URL")
    with pytest.raises(MissingSecretError, match="TOXIPROXY_URL"):
        started(params())


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (params(toxic="earthquake"), "toxic"),
        (params(toxic=None), "toxic"),
        (params(attributes={"rate": 10}), "attributes"),
        (params(toxicity=1.5), "toxicity"),
        (params(stream="sideways"), "stream"),
        ({"toxic": "latency"}, "proxy"),
    ],
)
def test_bad_params_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterParamsError) as failure:
        ToxiproxyAdapter.validate(raw)
    assert failure.value.field == field


def test_preflight_checks_the_proxy_exists() -> None:
    assert ToxiproxyAdapter().preflight(ToxiproxyAdapter.validate(params())).ok
    missing = ToxiproxyAdapter().preflight(ToxiproxyAdapter.validate(params(proxy="kafka")))
    assert not missing.ok and "no proxy named 'kafka'" in missing.detail


def test_preflight_fails_clearly_when_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", closed_port_url())
    result = ToxiproxyAdapter().preflight(ToxiproxyAdapter.validate(params(retries=0)))
    assert not result.ok and "could not reach the server" in result.detail


def test_unreachable_inject_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOXIPROXY_URL", closed_port_url())
    with pytest.raises(AdapterError) as failure:
        started(params(retries=1))
    assert failure.value.retryable
