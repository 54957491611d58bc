"""Kubernetes faults: create a Chaos Mesh custom resource through the Kubernetes API server."""

from __future__ import annotations

import re
import ssl
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator

from adapters._common import expiry, has_expired, params_as, reports_failures, require_env_reference, whole_seconds
from adapters._http import HttpTuning, Request, Verify, join_url, json_body, path_segment, send
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

GROUP, VERSION = "chaos-mesh.org", "v1alpha1"
MANAGED_BY = "app.kubernetes.io/managed-by"
RUN_LABEL = "chaosbot/run"
MANAGED_SELECTOR = f"{MANAGED_BY}=chaosbot"
DEFAULT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
ChaosKind = Literal[
    "AWSChaos",
    "AzureChaos",
    "BlockChaos",
    "DNSChaos",
    "GCPChaos",
    "HTTPChaos",
    "IOChaos",
    "JVMChaos",
    "KernelChaos",
    "NetworkChaos",
    "PhysicalMachineChaos",
    "PodChaos",
    "StressChaos",
    "TimeChaos",
]
KINDS: tuple[str, ...] = get_args(ChaosKind)
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class ChaosMeshParams(HttpTuning):
    api_url: str = "https://kubernetes.default.svc"
    token: str | None = None
    token_file: str = DEFAULT_TOKEN_FILE
    ca_file: str | None = None
    verify_tls: bool = True
    namespace: str = Field(pattern=_DNS_LABEL)
    kind: ChaosKind
    spec: dict[str, Any]

    @field_validator("token")
    @classmethod
    def _token_from_env(cls, token: str | None) -> str | None:
        return require_env_reference(token)

    @field_validator("spec")
    @classmethod
    def _no_duration(cls, spec: dict[str, Any]) -> dict[str, Any]:
        if "duration" in spec:
            raise ValueError("must not set duration: chaosbot sets it from the run duration")
        return spec


class ChaosMeshAdapter(Adapter):
    """Create a Chaos Mesh experiment (a ``chaos-mesh.org/v1alpha1`` resource) lasting the run duration.

    Parameters:

    - ``api_url`` (default ``https://kubernetes.default.svc``): the Kubernetes API server.
    - ``token``: a service-account bearer token, as an environment reference such as ``${K8S_TOKEN}``;
      when absent, ``token_file`` (default the in-cluster service-account token) is read at call time.
    - ``ca_file`` (CA bundle for the API server) and ``verify_tls`` (default true).
    - ``namespace`` (required) and ``kind`` (required): NetworkChaos, PodChaos, StressChaos, IOChaos,
      TimeChaos, DNSChaos, HTTPChaos, ... (the plural is the lowercased kind).
    - ``spec`` (required): the resource spec (selector, mode, action, ...); chaosbot sets ``spec.duration``
      from the run duration, so Chaos Mesh ends the fault by itself (self-expiring).
    - ``timeout_seconds`` (5), ``retries`` (3), ``backoff_seconds`` (0.5): see the shared HTTP plumbing.

    The resource is named ``chaosbot-<run id lowercased>`` and labelled ``app.kubernetes.io/managed-by:
    chaosbot`` and ``chaosbot/run: <run id>``. Inject: ``POST .../namespaces/{ns}/{plural}`` (409
    AlreadyExists counts as done). Revert: ``DELETE`` the named resource (404 is fine); Chaos Mesh then
    recovers the targets. ``halt_all``: ``DELETE`` the collection with the managed-by label selector, for
    every kind in the namespace. Preflight: ``GET`` the collection (checks the token, RBAC and the CRD).
    Status: the resource's ``status.experiment.desiredPhase`` (``Stop`` once the duration is over).
    """

    name = "chaos_mesh"
    Params = ChaosMeshParams
    self_expiring = True

    @reports_failures
    def preflight(self, params: AdapterParams) -> Preflight:
        p = params_as(ChaosMeshParams, params)
        response = send(_request(p, "GET", p.kind), p, accept=(401, 403, 404), verify=_verify(p))
        where = f"{p.kind} in namespace {p.namespace} at {p.api_url}"
        if response.status_code == 404:
            return Preflight(ok=False, detail=f"{where}: not found; is Chaos Mesh (its CRDs) installed?")
        if response.status_code in (401, 403):
            return Preflight(ok=False, detail=f"{where}: HTTP {response.status_code}; check token and RBAC")
        return Preflight(ok=True, detail=f"{where}: the API answers and lists the resources")

    def prepare(self, params: AdapterParams, *, run_id: str, duration: timedelta) -> FaultHandle:
        p = params_as(ChaosMeshParams, params)
        data = {
            "kind": p.kind,
            "namespace": p.namespace,
            "name": resource_name(run_id),
            "duration": f"{whole_seconds(duration)}s",
        }
        return FaultHandle(adapter=self.name, run_id=run_id, data=data)

    def inject(self, params: AdapterParams, handle: FaultHandle, *, duration: timedelta) -> FaultHandle:
        p = params_as(ChaosMeshParams, params)
        seconds = whole_seconds(duration)
        body = _resource(p, handle, seconds)
        send(_request(p, "POST", p.kind, json=body), p, accept=(409,), verify=_verify(p))
        data = {**handle.data, "duration": f"{seconds}s"}
        return replace(handle, data=data, expires_at=expiry(duration))

    def revert(self, params: AdapterParams, handle: FaultHandle) -> None:
        p = params_as(ChaosMeshParams, params)
        request = _request(p, "DELETE", p.kind, _name(handle))
        send(request, p, accept=(404,), verify=_verify(p))

    def status(self, params: AdapterParams, handle: FaultHandle) -> FaultStatus:
        p = params_as(ChaosMeshParams, params)
        response = send(_request(p, "GET", p.kind, _name(handle)), p, accept=(404,), verify=_verify(p))
        if response.status_code == 404:
            state = FaultState.EXPIRED if has_expired(handle.expires_at) else FaultState.REVERTED
            return FaultStatus(state, f"{p.kind} {_name(handle)} does not exist")
        return _status_of(json_body(response, f"GET {p.kind} {_name(handle)}"))

    def halt_all(self, params: AdapterParams) -> None:
        p = params_as(ChaosMeshParams, params)
        for kind in KINDS:
            request = _request(p, "DELETE", kind, query={"labelSelector": MANAGED_SELECTOR})
            send(request, p, accept=(404,), verify=_verify(p))


def resource_name(run_id: str) -> str:
    """``chaosbot-<run id>`` made a valid DNS-1123 name (lowercase, ``-`` for anything else, 63 chars)."""
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    return f"chaosbot-{slug}"[:63].rstrip("-")


def label_value(run_id: str) -> str:
    """The run id as a valid label value (alphanumerics, ``-_.``, at most 63, alphanumeric at both ends)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:63].strip("-_.")


def _name(handle: FaultHandle) -> str:
    return str(handle.data.get("name") or resource_name(handle.run_id))


def _resource(p: ChaosMeshParams, handle: FaultHandle, seconds: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": p.kind,
        "metadata": {
            "name": _name(handle),
            "namespace": p.namespace,
            "labels": {MANAGED_BY: "chaosbot", RUN_LABEL: label_value(handle.run_id)},
        },
        "spec": {**resolve_env(p.spec), "duration": f"{seconds}s"},
    }


def _status_of(resource: dict[str, Any]) -> FaultStatus:
    name = resource.get("metadata", {}).get("name", "?")
    if resource.get("metadata", {}).get("deletionTimestamp"):
        return FaultStatus(FaultState.REVERTED, f"{name} is being deleted; Chaos Mesh is recovering the targets")
    phase = (resource.get("status") or {}).get("experiment", {}).get("desiredPhase")
    if phase == "Stop":
        return FaultStatus(FaultState.EXPIRED, f"{name}: desiredPhase Stop (duration over or paused)")
    if phase == "Run":
        return FaultStatus(FaultState.ACTIVE, f"{name}: desiredPhase Run")
    return FaultStatus(FaultState.UNKNOWN, f"{name}: no experiment phase reported yet")


def _request(
    p: ChaosMeshParams,
    method: str,
    kind: str,
    name: str | None = None,
    *,
    json: Any = None,
    query: dict[str, str] | None = None,
) -> Request:
    segments = ["apis", GROUP, VERSION, "namespaces", p.namespace, kind.lower(), *([name] if name else [])]
    return Request(
        method=method,
        url=join_url(resolve_env(p.api_url), *(path_segment(segment) for segment in segments)),
        label=f"{method} {join_url(p.api_url, *segments)}",
        headers={"Authorization": f"Bearer {_token(p)}", "Accept": "application/json"},
        json=json,
        query=query,
    )


def _token(p: ChaosMeshParams) -> str:
    if p.token is not None:
        return str(resolve_env(p.token))
    try:
        return Path(p.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AdapterError(
            f"no Kubernetes token: set token (e.g. ${{K8S_TOKEN}}) or mount {p.token_file} ({exc.strerror})"
        ) from exc


def _verify(p: ChaosMeshParams) -> Verify:
    if not p.verify_tls:
        return False
    if p.ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(resolve_env(p.ca_file)))
    except OSError as exc:
        raise AdapterError(f"cannot read ca_file {p.ca_file}: {exc.strerror}") from exc
