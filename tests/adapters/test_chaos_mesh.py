"""The chaos_mesh adapter against a fake Kubernetes API server serving Chaos Mesh resources."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterError, AdapterParamsError, FaultHandle, FaultState, MissingSecretError
from adapters.chaos_mesh import ChaosMeshAdapter, label_value, resource_name
from tests.adapters.servers import Call, FakeBackend, Reply, RunningServer, closed_port_url, not_found, running

TOKEN = "k8s-s3cr3t-service-account-token"
RUN = "RUN-12"
NAME = "chaosbot-run-12"
MINUTE = timedelta(seconds=60)
PREFIX = re.compile(r"^/apis/chaos-mesh\.org/v1alpha1/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?$")
INSTALLED = {"networkchaos", "podchaos", "stresschaos"}


def status(reason: str, code: int) -> Reply:
    return Reply(code, {"kind": "Status", "status": "Failure", "reason": reason, "code": code})


class FakeKube(FakeBackend):
    """Namespaced custom-resource endpoints (create, get, list, delete, deletecollection) behind a bearer token."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self.objects.clear()

    def route(self, call: Call) -> Reply:
        if call.headers.get("authorization") != f"Bearer {TOKEN}":
            return status("Unauthorized", 401)
        match = PREFIX.match(call.path)
        if match is None or match.group(2) not in INSTALLED:
            return not_found("the server could not find the requested resource")
        namespace, plural, name = match.groups()
        if name is None:
            return self._collection(call, namespace, plural)
        key = (namespace, plural, name)
        if key not in self.objects:
            return status("NotFound", 404)
        if call.method == "DELETE":
            return Reply(200, self.objects.pop(key))
        return Reply(200, self.objects[key])

    def _collection(self, call: Call, namespace: str, plural: str) -> Reply:
        if call.method == "POST":
            return self._create(call.body, namespace, plural)
        selected = [
            (key, obj)
            for key, obj in self.objects.items()
            if key[:2] == (namespace, plural) and _matches(obj, call.query.get("labelSelector"))
        ]
        if call.method == "DELETE":
            for key, _ in selected:
                del self.objects[key]
        return Reply(200, {"kind": "List", "items": [obj for _, obj in selected]})

    def _create(self, body: dict[str, Any], namespace: str, plural: str) -> Reply:
        name = body["metadata"]["name"]
        if body["kind"].lower() != plural or "duration" not in body["spec"]:
            return status("Invalid", 422)
        if (namespace, plural, name) in self.objects:
            return status("AlreadyExists", 409)
        self.objects[(namespace, plural, name)] = {**body, "status": {"experiment": {"desiredPhase": "Run"}}}
        return Reply(201, body)


def _matches(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    key, _, value = selector.partition("=")
    return obj["metadata"].get("labels", {}).get(key) == value


@pytest.fixture(scope="module")
def kube() -> Iterator[RunningServer]:
    with running(FakeKube()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(kube: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    kube.backend.reset()
    monkeypatch.setenv("K8S_TOKEN", TOKEN)


def params(kube: RunningServer, **overrides: Any) -> dict[str, Any]:
    base = {
        "api_url": kube.url,
        "token": "${K8S_TOKEN}",
        "namespace": "shop",
        "kind": "NetworkChaos",
        "spec": {"action": "delay", "mode": "all", "selector": {"labelSelectors": {"app": "cart"}}},
        "backoff_seconds": 0.01,
    }
    return base | overrides


def started(raw: dict[str, Any], run_id: str = RUN) -> tuple[ChaosMeshAdapter, Any, FaultHandle]:
    adapter = ChaosMeshAdapter()
    p = ChaosMeshAdapter.validate(raw)
    handle = adapter.inject(p, adapter.prepare(p, run_id=run_id, duration=MINUTE), duration=MINUTE)
    return adapter, p, handle


def test_inject_creates_a_labelled_self_expiring_resource_and_revert_deletes_it(kube: RunningServer) -> None:
    adapter, p, handle = started(params(kube))
    created = kube.backend.objects[("shop", "networkchaos", NAME)]
    assert created["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "chaosbot", "chaosbot/run": RUN}
    assert created["spec"]["duration"] == "60s" and created["apiVersion"] == "chaos-mesh.org/v1alpha1"
    assert handle.expires_at is not None and handle.data["name"] == NAME
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, handle)
    assert kube.backend.objects == {}
    assert adapter.status(p, handle).state is FaultState.REVERTED


def test_inject_and_revert_are_idempotent(kube: RunningServer) -> None:
    adapter, p, handle = started(params(kube))
    adapter.inject(p, handle, duration=MINUTE)  # 409 AlreadyExists
    restored = FaultHandle.from_json(json.loads(json.dumps(handle.to_json())))
    ChaosMeshAdapter().revert(p, restored)
    ChaosMeshAdapter().revert(p, restored)  # 404
    assert kube.backend.objects == {}


def test_halt_all_deletes_every_managed_resource_of_every_kind(kube: RunningServer) -> None:
    started(params(kube))
    started(params(kube, kind="PodChaos", spec={"action": "pod-failure", "mode": "one"}), run_id="RUN-13")
    foreign = {"metadata": {"name": "someone-else", "labels": {}}, "kind": "PodChaos"}
    kube.backend.objects[("shop", "podchaos", "someone-else")] = foreign
    ChaosMeshAdapter().halt_all(ChaosMeshAdapter.validate(params(kube)))
    assert list(kube.backend.objects) == [("shop", "podchaos", "someone-else")]


def test_server_errors_are_retried_then_succeed(kube: RunningServer) -> None:
    kube.backend.fail_next(500, 503)
    started(params(kube))
    assert len(kube.backend.calls_to("POST")) == 3
    assert ("shop", "networkchaos", NAME) in kube.backend.objects


def test_token_file_is_used_when_no_token_is_given(kube: RunningServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    started(params(kube, token=None, token_file=str(token_file)))
    assert kube.backend.objects


def test_missing_token_file_is_a_clear_error(kube: RunningServer, tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no Kubernetes token"):
        started(params(kube, token=None, token_file=str(tmp_path / "absent")))


def test_the_token_never_reaches_the_handle(kube: RunningServer) -> None:
    _, _, handle = started(params(kube))
    assert TOKEN not in json.dumps(handle.to_json())


def test_missing_variable_names_it(kube: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("K8S_TOKEN")
    with pytest.raises(MissingSecretError) as failure:
        started(params(kube))
    assert failure.value.variable == "K8S_TOKEN"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "VolcanoChaos"}, "kind"),
        ({"namespace": "Not_Valid"}, "namespace"),
        ({"spec": {"action": "delay", "duration": "10m"}}, "spec"),
        ({"token": "literal-token"}, "token"),
        ({"verify_tls": "sometimes"}, "verify_tls"),
    ],
)
def test_bad_params_name_the_field(kube: RunningServer, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterParamsError) as failure:
        ChaosMeshAdapter.validate(params(kube, **overrides))
    assert failure.value.field == field


def test_preflight_checks_auth_and_crd(kube: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ChaosMeshAdapter().preflight(ChaosMeshAdapter.validate(params(kube))).ok
    missing_crd = ChaosMeshAdapter().preflight(ChaosMeshAdapter.validate(params(kube, kind="JVMChaos")))
    assert not missing_crd.ok and "installed" in missing_crd.detail
    monkeypatch.setenv("K8S_TOKEN", "k8s-wrong-token")
    unauthorised = ChaosMeshAdapter().preflight(ChaosMeshAdapter.validate(params(kube)))
    assert not unauthorised.ok and "HTTP 401" in unauthorised.detail


def test_preflight_fails_clearly_when_unreachable(kube: RunningServer) -> None:
    result = ChaosMeshAdapter().preflight(ChaosMeshAdapter.validate(params(kube, api_url=closed_port_url())))
    assert not result.ok and "could not reach the server" in result.detail


def test_names_and_labels_are_valid_for_kubernetes() -> None:
    assert resource_name("RUN-12") == NAME
    assert resource_name("Run 7 / retry#2") == "chaosbot-run-7-retry-2"
    assert len(resource_name("R" * 100)) == 63
    assert label_value("RUN 7/2") == "RUN_7_2"
