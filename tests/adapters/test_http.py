"""The http adapter against a fake feature-flag API served over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.base import AdapterError, AdapterParamsError, FaultHandle, FaultState, MissingSecretError
from adapters.http import HttpAdapter
from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, closed_port_url, not_found, running

TOKEN = "flag-s3cr3t-token-value"
RUN = "RUN-7"
MINUTE = timedelta(seconds=60)


class FakeFlagApi(FakeBackend):
    """``PUT/GET/DELETE /flags/{name}`` behind a bearer token, plus an open ``GET /health``."""

    def __init__(self) -> None:
        super().__init__()
        self.flags: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self.flags.clear()

    def route(self, call: Call) -> Reply:
        if call.path == "/health":
            return Reply(200, {"ok": True})
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"message": "bad token"})
        name = call.path.removeprefix("/flags/")
        if call.method == "PUT":
            self.flags[name] = call.body
            return Reply(200, {"name": name, **call.body})
        if name not in self.flags:
            return not_found()
        if call.method == "DELETE":
            del self.flags[name]
            return Reply(204)
        return Reply(200, {"name": name, **self.flags[name]})


@pytest.fixture(scope="module")
def flag_api() -> Iterator[RunningServer]:
    with running(FakeFlagApi()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(flag_api: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    flag_api.backend.reset()
    monkeypatch.setenv("FLAG_TOKEN", TOKEN)
    monkeypatch.setenv("FLAG_API", flag_api.url)


def params(**overrides: Any) -> dict[str, Any]:
    auth = {"Authorization": "Bearer ${FLAG_TOKEN}"}
    base: dict[str, Any] = {
        "inject": {
            "method": "PUT",
            "url": "${FLAG_API}/flags/cache-off-{{run_id}}",
            "headers": auth,
            "json": {"enabled": True, "ttl": "{{duration_seconds}}", "reason": "chaos {{run_id}}"},
        },
        "revert": {"method": "DELETE", "url": "${FLAG_API}/flags/cache-off-{{run_id}}", "headers": auth},
        "status": {"url": "${FLAG_API}/flags/cache-off-{{run_id}}", "headers": auth},
        "backoff_seconds": 0.01,
    }
    return base | overrides


def started(raw: dict[str, Any], run_id: str = RUN) -> tuple[HttpAdapter, Any, FaultHandle]:
    adapter = HttpAdapter()
    p = HttpAdapter.validate(raw)
    handle = adapter.inject(p, adapter.prepare(p, run_id=run_id, duration=MINUTE), duration=MINUTE)
    return adapter, p, handle


def test_inject_sets_the_flag_with_placeholders_and_revert_removes_it(flag_api: RunningServer) -> None:
    adapter, p, handle = started(params())
    assert flag_api.backend.flags == {f"cache-off-{RUN}": {"enabled": True, "ttl": 60, "reason": f"chaos {RUN}"}}
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, handle)
    assert flag_api.backend.flags == {}
    assert adapter.status(p, handle).state is FaultState.REVERTED


def test_revert_is_idempotent_and_works_from_a_json_round_tripped_handle(flag_api: RunningServer) -> None:
    _, p, handle = started(params())
    restored = FaultHandle.from_json(json.loads(json.dumps(handle.to_json())))
    HttpAdapter().revert(p, restored)
    HttpAdapter().revert(p, restored)
    assert flag_api.backend.flags == {}


def test_handle_records_templates_never_secrets() -> None:
    _, _, handle = started(params())
    dumped = json.dumps(handle.to_json())
    assert TOKEN not in dumped
    assert handle.data["requests"] == [
        {"step": "inject", "method": "PUT", "url": f"${{FLAG_API}}/flags/cache-off-{RUN}", "status": 200}
    ]


def test_server_errors_are_retried_then_succeed(flag_api: RunningServer) -> None:
    flag_api.backend.fail_next(503, 500)
    started(params())
    assert len(flag_api.backend.calls_to("PUT")) == 3
    assert f"cache-off-{RUN}" in flag_api.backend.flags


def test_persistent_server_errors_are_retryable_after_bounded_retries(flag_api: RunningServer) -> None:
    flag_api.backend.fail_next(500, 500, 500)
    with pytest.raises(AdapterError) as failure:
        started(params(retries=2))
    assert failure.value.retryable
    assert "HTTP 500" in failure.value.message and "3 attempts" in failure.value.message
    assert len(flag_api.backend.calls_to("PUT")) == 3


def test_client_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch, flag_api: RunningServer) -> None:
    monkeypatch.setenv("FLAG_TOKEN", "wrong-token-value")
    with pytest.raises(AdapterError) as failure:
        started(params())
    assert not failure.value.retryable
    assert "HTTP 401" in failure.value.message
    assert "wrong-token-value" not in failure.value.message
    assert len(flag_api.backend.calls_to("PUT")) == 1


def test_missing_variable_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAG_TOKEN")
    with pytest.raises(MissingSecretError) as failure:
        started(params())
    assert failure.value.variable == "FLAG_TOKEN"
    assert "FLAG_TOKEN" in str(failure.value)


def test_self_expiring_toggle_sets_expires_at() -> None:
    _, _, plain = started(params())
    _, _, ttl = started(params(self_expiring=True), run_id="RUN-8")
    assert plain.expires_at is None
    assert ttl.expires_at is not None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"revert": {"url": "http://x"}}, "inject"),
        (params(retries=-1), "retries"),
        (params(inject={"url": "ftp://x"}), "inject.url"),
        (params(inject={"method": "BREW", "url": "http://x"}), "inject.method"),
        (params(surprise=True), "surprise"),
    ],
)
def test_bad_params_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterParamsError) as failure:
        HttpAdapter.validate(raw)
    assert failure.value.field == field


def test_preflight_without_request_only_checks_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    p = HttpAdapter.validate(params())
    result = HttpAdapter().preflight(p)
    assert result.ok and "not checked" in result.detail
    monkeypatch.delenv("FLAG_TOKEN")
    result = HttpAdapter().preflight(p)
    assert not result.ok and "FLAG_TOKEN" in result.detail


def test_preflight_calls_the_configured_request(flag_api: RunningServer) -> None:
    p = HttpAdapter.validate(params(preflight={"url": "${FLAG_API}/health"}))
    assert HttpAdapter().preflight(p).ok
    assert flag_api.backend.calls_to("GET", "/health")


def test_preflight_fails_clearly_when_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG_API", closed_port_url())
    p = HttpAdapter.validate(params(preflight={"url": "${FLAG_API}/health"}, retries=1))
    result = HttpAdapter().preflight(p)
    assert not result.ok
    assert "GET ${FLAG_API}/health: could not reach the server" in result.detail
