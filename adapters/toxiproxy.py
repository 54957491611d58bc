"""Network faults through a Toxiproxy server: add a toxic to a proxy, or take the proxy down."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from adapters._common import params_as, reports_failures
from adapters._http import HttpTuning, Request, join_url, json_body, path_segment, send
from adapters.base import (
    Adapter,
    AdapterParams,
    FaultHandle,
    FaultState,
    FaultStatus,
    Preflight,
    resolve_env,
)

ToxicType = Literal["latency", "timeout", "bandwidth", "slow_close", "limit_data", "reset_peer", "slicer"]
TOXIC_ATTRIBUTES: dict[str, frozenset[str]] = {
    "latency": frozenset({"latency", "jitter"}),
    "timeout": frozenset({"timeout"}),
    "bandwidth": frozenset({"rate"}),
    "slow_close": frozenset({"delay"}),
    "limit_data": frozenset({"bytes"}),
    "reset_peer": frozenset({"timeout"}),
    "slicer": frozenset({"average_size", "size_variation", "delay"}),
}
NAME_PREFIX = "chaosbot-"


class ToxiproxyParams(HttpTuning):
    api_url: str = "http://127.0.0.1:8474"
    proxy: str = Field(min_length=1)
    mode: Literal["toxic", "down"] = "toxic"
    toxic: ToxicType | None = Field(default=None, validate_default=True)
    attributes: dict[str, int] = Field(default_factory=dict)
    stream: Literal["downstream", "upstream"] = "downstream"
    toxicity: float = Field(default=1.0, ge=0, le=1)

    @field_validator("toxic")
    @classmethod
    def _toxic_for_mode(cls, toxic: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if mode == "toxic" and toxic is None:
            raise ValueError("required when mode is 'toxic' (one of: " + ", ".join(TOXIC_ATTRIBUTES) + ")")
        if mode == "down" and toxic is not None:
            raise ValueError("must be empty when mode is 'down'")
        return toxic

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, attributes: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        known = TOXIC_ATTRIBUTES.get(info.data.get("toxic") or "", frozenset())
        unknown = sorted(set(attributes) - known)
        if unknown:
            raise ValueError(f"unknown {unknown} for this toxic; allowed: {sorted(known)}")
        if any(value < 0 for value in attributes.values()):
            raise ValueError("values must be non-negative integers")
        return attributes


class ToxiproxyAdapter(Adapter):
    """Degrade a Toxiproxy proxy: add a toxic (``mode: toxic``) or disable the proxy (``mode: down``).

    Parameters:

    - ``api_url`` (default ``http://127.0.0.1:8474``): the Toxiproxy HTTP API; may be a ``${VAR}``.
    - ``proxy`` (required): the proxy name.
    - ``mode`` (default ``toxic``): ``toxic`` adds a toxic; ``down`` sets the proxy ``enabled: false``.
    - ``toxic``: toxic type for ``mode: toxic``: latency, timeout, bandwidth, slow_close, limit_data,
      reset_peer or slicer.
    - ``attributes`` (dict of integers): the toxic's attributes, e.g. ``{latency: 500, jitter: 50}``
      (latency/jitter/timeout/delay in ms, rate in KB/s, bytes); unknown names are rejected.
    - ``stream`` (default ``downstream``) and ``toxicity`` (default 1.0, the share of connections hit).
    - ``timeout_seconds`` (5), ``retries`` (3), ``backoff_seconds`` (0.5): see the shared HTTP plumbing.

    Inject: ``POST /proxies/{proxy}/toxics`` with the deterministic name ``chaosbot-<run_id>`` (409 "already
    exists" counts as done), or ``POST /proxies/{proxy}`` ``{"enabled": false}``. Toxiproxy has no TTL, so the
    fault is not self-expiring. Revert: ``DELETE /proxies/{proxy}/toxics/{name}`` (404 is fine) or
    ``{"enabled": true}``. Preflight: ``GET /proxies/{proxy}``. ``halt_all`` removes every ``chaosbot-``
    toxic from every proxy, and re-enables the configured proxy when ``mode`` is ``down``.
    """

    name = "toxiproxy"
    Params = ToxiproxyParams
    self_expiring = False

    @reports_failures
    def preflight(self, params: AdapterParams) -> Preflight:
        p = params_as(ToxiproxyParams, params)
        response = send(_request(p, "GET", "proxies", p.proxy), p, accept=(404,))
        if response.status_code == 404:
            return Preflight(ok=False, detail=f"Toxiproxy at {p.api_url} has no proxy named {p.proxy!r}")
        proxy = json_body(response, f"GET {p.api_url}/proxies/{p.proxy}")
        enabled = "enabled" if proxy.get("enabled", True) else "currently DISABLED"
        return Preflight(ok=True, detail=f"proxy {p.proxy!r} exists ({enabled}, upstream {proxy.get('upstream')})")

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(ToxiproxyParams, params)
        data: dict[str, Any] = {"proxy": p.proxy, "mode": p.mode}
        if p.mode == "toxic":
            data |= {"toxic_name": NAME_PREFIX + run_id, "toxic": p.toxic, "stream": p.stream}
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(ToxiproxyParams, params)
        if p.mode == "down":
            send(_request(p, "POST", "proxies", p.proxy, json={"enabled": False}), p)
        else:
            body = {
                "name": _toxic_name(handle),
                "type": p.toxic,
                "stream": p.stream,
                "toxicity": p.toxicity,
                "attributes": p.attributes,
            }
            send(_request(p, "POST", "proxies", p.proxy, "toxics", json=body), p, accept=(409,))
        return replace(handle, data={**handle.data, "injected": True}, expires_at=None)

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = params_as(ToxiproxyParams, params)
        if p.mode == "down":
            send(_request(p, "POST", "proxies", p.proxy, json={"enabled": True}), p, accept=(404,))
        else:
            send(_request(p, "DELETE", "proxies", p.proxy, "toxics", _toxic_name(handle)), p, accept=(404,))

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = params_as(ToxiproxyParams, params)
        if p.mode == "down":
            response = send(_request(p, "GET", "proxies", p.proxy), p, accept=(404,))
            if response.status_code == 404:
                return FaultStatus(FaultState.UNKNOWN, f"proxy {p.proxy!r} no longer exists")
            enabled = json_body(response, f"GET {p.api_url}/proxies/{p.proxy}").get("enabled", True)
            return FaultStatus(FaultState.REVERTED if enabled else FaultState.ACTIVE, f"enabled={enabled}")
        name = _toxic_name(handle)
        response = send(_request(p, "GET", "proxies", p.proxy, "toxics", name), p, accept=(404,))
        if response.status_code == 404:
            return FaultStatus(FaultState.REVERTED, f"toxic {name!r} is not on proxy {p.proxy!r}")
        return FaultStatus(FaultState.ACTIVE, f"toxic {name!r} is on proxy {p.proxy!r}")

    def halt_all(self, params: AdapterParams) -> None:
        p = params_as(ToxiproxyParams, params)
        proxies = json_body(send(_request(p, "GET", "proxies"), p), f"GET {p.api_url}/proxies")
        for proxy_name, proxy in proxies.items():
            for toxic in proxy.get("toxics") or []:
                if str(toxic.get("name", "")).startswith(NAME_PREFIX):
                    request = _request(p, "DELETE", "proxies", proxy_name, "toxics", toxic["name"])
                    send(request, p, accept=(404,))
        if p.mode == "down":
            send(_request(p, "POST", "proxies", p.proxy, json={"enabled": True}), p, accept=(404,))


def _toxic_name(handle: FaultHandle) -> str:
    return str(handle.data.get("toxic_name") or NAME_PREFIX + handle.run_id)


def _request(p: ToxiproxyParams, method: str, *segments: str, json: Any = None) -> Request:
    path = [path_segment(resolve_env(segment)) for segment in segments]
    return Request(
        method=method,
        url=join_url(resolve_env(p.api_url), *path),
        label=f"{method} {join_url(p.api_url, *segments)}",
        headers={"User-Agent": "chaosbot"},
        json=json,
    )
