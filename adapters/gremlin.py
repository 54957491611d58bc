"""Faults run by Gremlin agents, driven through the Gremlin REST API (v1 attacks endpoints)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator

from adapters._common import expiry, has_expired, params_as, reports_failures, require_env_reference, whole_seconds
from adapters._http import HttpTuning, Request, join_url, json_body, path_segment, send
from adapters.base import (
    Adapter,
    AdapterError,
    AdapterParams,
    FaultHandle,
    FaultState,
    FaultStatus,
    Preflight,
    resolve_env,
)

LENGTH_FLAGS = ("-l", "--length")
_RUNNING = {"Pending", "Distributed", "Initializing", "Running", "TearingDown"}
_HALTED = {"HaltRequested", "HaltDistributed", "Halted", "UserHalted"}


class GremlinParams(HttpTuning):
    api_url: str = "https://api.gremlin.com/v1"
    api_key: str
    team_id: str = Field(min_length=1)
    target: dict[str, Any]
    command: dict[str, Any]

    @field_validator("api_key")
    @classmethod
    def _key_from_env(cls, api_key: str) -> str:
        require_env_reference(api_key)
        return api_key

    @field_validator("target")
    @classmethod
    def _target(cls, target: dict[str, Any]) -> dict[str, Any]:
        if target.get("type") not in ("Exact", "Random"):
            raise ValueError("needs type 'Exact' or 'Random' plus hosts/containers selection")
        return target

    @field_validator("command")
    @classmethod
    def _command(cls, command: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(command.get("type"), str):
            raise ValueError("needs a type, e.g. 'cpu', 'latency', 'blackhole'")
        args = command.get("args", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise ValueError("args must be a list of strings")
        if any(arg in LENGTH_FLAGS for arg in args):
            raise ValueError("args must not set -l/--length: chaosbot sets it from the run duration")
        return command


class GremlinAdapter(Adapter):
    """Create a Gremlin attack (experiment) that lasts the run duration; self-expiring.

    Parameters:

    - ``api_url`` (default ``https://api.gremlin.com/v1``).
    - ``api_key`` (required): must be an environment reference such as ``${GREMLIN_API_KEY}``; sent as
      ``Authorization: Key <key>`` at call time, never stored.
    - ``team_id`` (required): sent as the ``teamId`` query parameter.
    - ``target`` (required): Gremlin's target object, e.g. ``{type: Exact, hosts: {ids: [web-1]}}`` or
      ``{type: Random, containers: {multiSelectLabels: {...}}, exact: 1}``.
    - ``command`` (required): Gremlin's command object, e.g. ``{type: latency, args: ["-m", "300"]}``;
      chaosbot appends ``-l <run seconds>`` to ``args``, so ``-l``/``--length`` must not be given.
    - ``timeout_seconds`` (5), ``retries`` (3), ``backoff_seconds`` (0.5): see the shared HTTP plumbing.
      Creating an attack is not idempotent, so it is only re-sent when the server cannot have acted on it
      (connection refused, 429, 503).

    Documented v1 endpoints used: ``POST /attacks/new?teamId=`` (body ``{target, command}``, answer: the
    attack guid as text), ``DELETE /attacks/{guid}?teamId=`` (halt one; revert, 404 is fine),
    ``DELETE /attacks?teamId=`` (halt all active attacks; ``halt_all``), ``GET /attacks/{guid}?teamId=``
    (status, from the attack's ``stage``) and ``GET /attacks/active?teamId=`` (preflight: key and team work).
    """

    name = "gremlin"
    Params = GremlinParams
    self_expiring = True

    @reports_failures
    def preflight(self, params: AdapterParams) -> Preflight:
        p = params_as(GremlinParams, params)
        active = json_body(send(_request(p, "GET", "attacks", "active"), p), f"GET {p.api_url}/attacks/active")
        count = len(active) if isinstance(active, list) else "?"
        return Preflight(ok=True, detail=f"Gremlin API at {p.api_url} accepts the key; {count} active attack(s)")

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(GremlinParams, params)
        data = {"command": p.command["type"], "length_seconds": whole_seconds(duration), "attack_id": None}
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(GremlinParams, params)
        seconds = whole_seconds(duration)
        command = resolve_env(p.command)
        body = {
            "target": resolve_env(p.target),
            "command": {**command, "args": [*command.get("args", []), "-l", str(seconds)]},
        }
        response = send(_request(p, "POST", "attacks", "new", json=body), p, idempotent=False)
        attack_id = response.text.strip().strip('"')
        if not attack_id:
            raise AdapterError(f"POST {p.api_url}/attacks/new answered {response.status_code} without a guid")
        data = {**handle.data, "attack_id": attack_id, "length_seconds": seconds}
        return replace(handle, data=data, expires_at=expiry(duration))

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = params_as(GremlinParams, params)
        attack_id = handle.data.get("attack_id")
        if not attack_id:
            return  # never created (or its guid was lost before being persisted: it then ends by its length)
        send(_request(p, "DELETE", "attacks", attack_id), p, accept=(404,))

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = params_as(GremlinParams, params)
        attack_id = handle.data.get("attack_id")
        if not attack_id:
            return FaultStatus(FaultState.UNKNOWN, "no attack was created")
        response = send(_request(p, "GET", "attacks", attack_id), p, accept=(404,))
        if response.status_code == 404:
            return FaultStatus(FaultState.UNKNOWN, f"Gremlin does not know attack {attack_id}")
        stage = str(json_body(response, f"GET {p.api_url}/attacks/{attack_id}").get("stage", ""))
        return FaultStatus(_state(stage, handle), f"attack {attack_id} stage: {stage or 'not reported'}")

    def halt_all(self, params: AdapterParams) -> None:
        p = params_as(GremlinParams, params)
        send(_request(p, "DELETE", "attacks"), p)


def _state(stage: str, handle: FaultHandle) -> FaultState:
    if stage in _RUNNING:
        return FaultState.ACTIVE
    if stage in _HALTED:
        return FaultState.REVERTED
    if stage == "Successful" or (not stage and has_expired(handle.expires_at)):
        return FaultState.EXPIRED
    return FaultState.UNKNOWN


def _request(p: GremlinParams, method: str, *segments: str, json: Any = None) -> Request:
    return Request(
        method=method,
        url=join_url(resolve_env(p.api_url), *(path_segment(segment) for segment in segments)),
        label=f"{method} {join_url(p.api_url, *segments)}",
        headers={"Authorization": f"Key {resolve_env(p.api_key)}", "Accept": "application/json, text/plain"},
        json=json,
        query={"teamId": resolve_env(p.team_id)},
    )
