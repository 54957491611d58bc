"""A runtime whose build fails half-way stops what the build had started (no roles thread left behind)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bot import runtime


class Roles:
    def __init__(self) -> None:
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True


class Db:
    disposed = False

    def dispose(self) -> None:
        self.disposed = True


class Broken(Exception):
    pass


def test_a_failed_build_stops_the_roles_thread_and_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    context = SimpleNamespace(roles=Roles(), db=Db(), core=object(), policy=object())
    closed: list[str] = []

    class Coordination:
        def close(self) -> None:
            closed.append("coordination")

    def fail(*_: Any, **__: Any) -> None:
        raise Broken

    monkeypatch.setattr(runtime, "build_context", lambda settings, members_of: context)
    monkeypatch.setattr(runtime, "build_coordination", lambda redis, db: Coordination())
    monkeypatch.setattr(runtime, "Publisher", fail)
    settings = SimpleNamespace(redis_url=None, channel="C1", zone="UTC", outbox_backoff_seconds=1.0)

    with pytest.raises(Broken):
        runtime.build_runtime(settings, surface=object())  # type: ignore[arg-type]  # fakes of the parts used

    assert context.roles.started and context.roles.closed
    assert closed == ["coordination"]
    assert context.db.disposed
