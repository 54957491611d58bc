"""A revert that fails, and whose backend status cannot be read either, says so in the log (not silently)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from adapters.base import AdapterError, FaultHandle
from bot.engine import revert
from bot.engine.rollbacks import FaultTarget


class Unreachable:
    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        return params

    def revert(self, params: Any, handle: FaultHandle) -> None:
        raise AdapterError("backend says no")

    def status(self, params: Any, handle: FaultHandle) -> None:
        raise ConnectionError("backend unreachable")


def test_a_failed_status_check_after_a_failed_revert_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(revert, "adapter_for", lambda target: Unreachable())
    target = FaultTarget(7, "unreachable", {}, FaultHandle(adapter="unreachable", run_id="CHAOS-1").to_json())

    with caplog.at_level(logging.WARNING, logger="bot.engine.revert"):
        error, tries, _steps = revert.revert_target(target, attempts=1)

    assert (error, tries) == ("backend says no", 1)
    record = next(r for r in caplog.records if "status could not be read" in r.getMessage())
    assert "fault 7 (unreachable)" in record.getMessage()
    assert record.exc_info is not None and "backend unreachable" in str(record.exc_info[1])
