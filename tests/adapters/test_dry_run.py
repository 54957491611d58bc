"""The dry_run adapter: validates like the real adapter, records every call, contacts nothing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from adapters import dry_run, registry
from adapters.base import AdapterParamsError, FaultHandle, FaultState
from adapters.dry_run import DryRunAdapter

RUN = "RUN-21"
MINUTE = timedelta(seconds=60)
GREMLIN = {
    "api_key": "${GREMLIN_API_KEY}",
    "team_id": "team-1",
    "target": {"type": "Exact", "hosts": {"ids": ["web-1"]}},
    "command": {"type": "cpu", "args": ["-c", "1"]},
}


def params(would_use: str = "gremlin", inner: dict[str, Any] | None = None) -> Any:
    return DryRunAdapter.validate({"would_use": would_use, "params": GREMLIN if inner is None else inner})


def test_a_whole_rehearsal_is_recorded_in_the_handle_and_the_journal() -> None:
    adapter, p = DryRunAdapter(), params()
    handle = adapter.prepare(p, run_id=RUN, duration=MINUTE)
    handle = adapter.inject(p, handle, duration=MINUTE)
    assert adapter.status(p, handle).state is FaultState.ACTIVE
    adapter.revert(p, FaultHandle.from_json(json.loads(json.dumps(handle.to_json()))))
    assert adapter.status(p, handle).state is FaultState.REVERTED
    assert [call["action"] for call in handle.data["calls"]] == ["prepare", "inject"]
    assert [entry["action"] for entry in adapter.journal.entries(RUN)] == [
        "prepare",
        "inject",
        "status",
        "revert",
        "status",
    ]
    assert handle.data["needs_env"] == ["GREMLIN_API_KEY"]
    assert handle.expires_at is not None  # gremlin attacks are self-expiring, so the rehearsal is too


def test_not_self_expiring_targets_have_no_expiry() -> None:
    toxiproxy = {"proxy": "redis", "toxic": "latency", "attributes": {"latency": 100}}
    p = params("toxiproxy", toxiproxy)
    handle = DryRunAdapter().inject(p, DryRunAdapter().prepare(p, run_id=RUN, duration=MINUTE), duration=MINUTE)
    assert handle.expires_at is None


def test_preflight_contacts_nothing_and_lists_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GREMLIN_API_KEY", raising=False)
    result = DryRunAdapter().preflight(params())
    assert result.ok and "GREMLIN_API_KEY" in result.detail


@pytest.mark.parametrize(
    ("would_use", "inner", "field"),
    [
        ("kafka", {}, "would_use"),
        ("dry_run", {}, "would_use"),
        ("gremlin", {**GREMLIN, "api_key": "literal"}, "params.api_key"),
        ("redis", {"url": "redis://cache:6379", "mode": "sometimes"}, "params.mode"),
    ],
)
def test_target_and_its_params_are_validated(would_use: str, inner: dict[str, Any], field: str) -> None:
    with pytest.raises(AdapterParamsError) as failure:
        params(would_use, inner)
    assert failure.value.field == field


def test_unknown_target_error_lists_known_adapters() -> None:
    with pytest.raises(AdapterParamsError, match=r"known adapters: .*toxiproxy"):
        params("kafka", {})


def test_the_journal_is_bounded_and_thread_safe() -> None:
    adapter, p = DryRunAdapter(), params()

    def rehearse(worker: int) -> None:
        for index in range(100):
            adapter.prepare(p, run_id=f"RUN-{worker}-{index}", duration=MINUTE)

    workers = [threading.Thread(target=rehearse, args=(worker,)) for worker in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(adapter.journal.entries()) == dry_run.JOURNAL_SIZE


def test_a_rehearsal_wraps_the_real_adapter_and_takes_its_own_params() -> None:
    adapter = registry.create("gremlin", dry_run=True)
    p = adapter.validate(GREMLIN)
    handle = adapter.inject(p, adapter.prepare(p, run_id=RUN, duration=MINUTE), duration=MINUTE)
    assert isinstance(adapter, DryRunAdapter) and handle.adapter == "dry_run"
    assert handle.data["would_use"] == "gremlin" and handle.expires_at is not None


def test_a_wrapping_rehearsal_validates_with_the_real_adapters_rules() -> None:
    with pytest.raises(AdapterParamsError) as failure:
        registry.create("gremlin", dry_run=True).validate({**GREMLIN, "api_key": "literal"})
    assert failure.value.field == "params.api_key"


def test_a_rehearsal_rebuilt_in_a_new_process_reverts_a_recorded_handle() -> None:
    first = registry.create("toxiproxy", dry_run=True)
    toxiproxy = {"proxy": "redis", "toxic": "latency", "attributes": {"latency": 100}}
    p = first.validate(toxiproxy)
    stored = json.loads(
        json.dumps(first.inject(p, first.prepare(p, run_id=RUN, duration=MINUTE), duration=MINUTE).to_json())
    )
    again = registry.create("toxiproxy", dry_run=True)
    again.revert(again.validate(toxiproxy), FaultHandle.from_json(stored))
    assert isinstance(again, DryRunAdapter)
    assert [entry["action"] for entry in again.journal.entries(RUN)] == ["revert"]


def test_each_adapter_keeps_its_own_journal() -> None:
    one, two, p = DryRunAdapter(), DryRunAdapter(), params()
    one.prepare(p, run_id=RUN, duration=MINUTE)
    assert len(one.journal.entries()) == 1 and two.journal.entries() == []


def test_a_catalogue_entry_naming_dry_run_is_used_as_it_is() -> None:
    adapter = registry.create("dry_run", dry_run=True)
    assert type(adapter) is DryRunAdapter and adapter.validate({"would_use": "gremlin", "params": GREMLIN})
