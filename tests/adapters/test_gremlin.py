"""The gremlin adapter against a fake Gremlin v1 attacks API that checks the key and team."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.base import AdapterError, AdapterParamsError, FaultHandle, FaultState, MissingSecretError
from adapters.gremlin import GremlinAdapter
from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, closed_port_url, not_found, running

API_KEY = "gremlin-s3cr3t-api-key"
TEAM = "team-42"
RUN = "RUN-5"
MINUTE = timedelta(seconds=60)


class FakeGremlin(FakeBackend):
    """``POST /v1/attacks/new``, ``GET|DELETE /v1/attacks/{guid}``, ``DELETE /v1/attacks``, ``GET .../active``."""

    def __init__(self) -> None:
        super().__init__()
        self.attacks: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self.attacks.clear()

    def route(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Key {API_KEY}":
            return Reply(401, {"message": "unauthorized"})
        if call.query.get("teamId") != TEAM:
            return Reply(400, {"message": "teamId required"})
        path = call.path.removeprefix("/v1/attacks").strip("/")
        if (call.method, path) == ("POST", "new"):
            return self._create(call.body)
        if (call.method, path) == ("GET", "active"):
            return Reply(200, [a for a in self.attacks.values() if a["stage"] == "Running"])
        if (call.method, path) == ("DELETE", ""):
            for attack in self.attacks.values():
                attack["stage"] = "Halted"
            return Reply(200)
        if path not in self.attacks:
            return not_found("attack not found")
        if call.method == "DELETE":
            self.attacks[path]["stage"] = "Halted"
            return Reply(200)
        return Reply(200, self.attacks[path])

    def _create(self, body: dict[str, Any]) -> Reply:
        args = body["command"].get("args", [])
        if body["target"].get("type") not in ("Exact", "Random") or "-l" not in args:
            return Reply(400, {"message": "bad attack"})
        guid = str(uuid.uuid4())
        self.attacks[guid] = {"guid": guid, "stage": "Running", "length": int(args[args.index("-l") + 1]), **body}
        return Reply(201, guid)

    def running(self) -> list[str]:
        return [guid for guid, attack in self.attacks.items() if attack["stage"] == "Running"]


@pytest.fixture(scope="module")
def gremlin() -> Iterator[RunningServer]:
    with running(FakeGremlin()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(gremlin: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    gremlin.backend.reset()
    monkeypatch.setenv("GREMLIN_API_KEY", API_KEY)


def params(gremlin: RunningServer, **overrides: Any) -> dict[str, Any]:
    base = {
        "api_url": f"{gremlin.url}/v1",
        "api_key": "${GREMLIN_API_KEY}",
        "team_id": TEAM,
        "target": {"type": "Exact", "hosts": {"ids": ["web-1"]}},
        "command": {"type": "latency", "args": ["-m", "300"]},
        "backoff_seconds": 0.01,
    }
    return base | overrides


def started(raw: dict[str, Any]) -> tuple[GremlinAdapter, Any, FaultHandle]:
    adapter = GremlinAdapter()
    p = GremlinAdapter.validate(raw)
    handle = adapter.inject(p, adapter.prepare(p, run_id=RUN, duration=MINUTE), duration=MINUTE)
    return adapter, p, handle


def test_inject_creates_a_self_expiring_attack_and_revert_halts_it(gremlin: RunningServer) -> None:
    adapter, p, handle = started(params(gremlin))
    guid = handle.data["attack_id"]
    assert gremlin.backend.running() == [guid]
    attack = gremlin.backend.attacks[guid]
    assert attack["length"] == 60 and attack["command"]["args"] == ["-m", "300", "-l", "60"]
    assert handle.expires_at is not None
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, handle)
    assert gremlin.backend.running() == []
    assert adapter.status(p, handle).state is FaultState.REVERTED


def test_revert_is_idempotent_and_works_from_a_json_round_tripped_handle(gremlin: RunningServer) -> None:
    _, p, handle = started(params(gremlin))
    restored = FaultHandle.from_json(json.loads(json.dumps(handle.to_json())))
    GremlinAdapter().revert(p, restored)
    GremlinAdapter().revert(p, restored)
    gremlin.backend.attacks.clear()
    GremlinAdapter().revert(p, restored)  # 404: already gone
    assert gremlin.backend.running() == []


def test_revert_before_inject_does_nothing(gremlin: RunningServer) -> None:
    p = GremlinAdapter.validate(params(gremlin))
    GremlinAdapter().revert(p, GremlinAdapter().prepare(p, run_id=RUN, duration=MINUTE))
    assert gremlin.backend.calls == []


def test_halt_all_halts_every_active_attack(gremlin: RunningServer) -> None:
    started(params(gremlin))
    started(params(gremlin))
    GremlinAdapter().halt_all(GremlinAdapter.validate(params(gremlin)))
    assert gremlin.backend.running() == []


def test_create_is_retried_only_when_the_server_did_not_act(gremlin: RunningServer) -> None:
    gremlin.backend.fail_next(503, 429)
    started(params(gremlin))
    assert len(gremlin.backend.calls_to("POST")) == 3
    gremlin.backend.reset()
    gremlin.backend.fail_next(500)
    with pytest.raises(AdapterError) as failure:
        started(params(gremlin))
    assert not failure.value.retryable and "may have been applied" in failure.value.message
    assert len(gremlin.backend.calls_to("POST")) == 1


def test_halt_server_errors_are_retried_then_succeed(gremlin: RunningServer) -> None:
    adapter, p, handle = started(params(gremlin))
    gremlin.backend.fail_next(500, 502)
    adapter.revert(p, handle)
    assert len(gremlin.backend.calls_to("DELETE")) == 3
    assert gremlin.backend.running() == []


def test_the_api_key_never_reaches_the_handle_or_an_error(
    gremlin: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, handle = started(params(gremlin))
    assert API_KEY not in json.dumps(handle.to_json())
    monkeypatch.setenv("GREMLIN_API_KEY", "gremlin-wrong-key-value")
    with pytest.raises(AdapterError) as failure:
        started(params(gremlin))
    assert "HTTP 401" in failure.value.message and "gremlin-wrong-key-value" not in failure.value.message


def test_missing_variable_names_it(gremlin: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREMLIN_API_KEY")
    with pytest.raises(MissingSecretError) as failure:
        started(params(gremlin))
    assert failure.value.variable == "GREMLIN_API_KEY"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"api_key": "literal-key"}, "api_key"),
        ({"command": {"type": "cpu", "args": ["-l", "30"]}}, "command"),
        ({"command": {"args": []}}, "command"),
        ({"target": {"hosts": "all"}}, "target"),
        ({"team_id": ""}, "team_id"),
        ({"retries": 99}, "retries"),
    ],
)
def test_bad_params_name_the_field(gremlin: RunningServer, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterParamsError) as failure:
        GremlinAdapter.validate(params(gremlin, **overrides))
    assert failure.value.field == field


def test_preflight_checks_key_and_team(gremlin: RunningServer) -> None:
    assert GremlinAdapter().preflight(GremlinAdapter.validate(params(gremlin))).ok
    result = GremlinAdapter().preflight(GremlinAdapter.validate(params(gremlin, team_id="other")))
    assert not result.ok and "HTTP 400" in result.detail


def test_preflight_fails_clearly_when_unreachable(gremlin: RunningServer) -> None:
    raw = params(gremlin, api_url=f"{closed_port_url()}/v1", retries=0)
    result = GremlinAdapter().preflight(GremlinAdapter.validate(raw))
    assert not result.ok and "could not reach the server" in result.detail
