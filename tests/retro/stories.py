"""Runs told sample by sample: each ending the engine can produce, recorded the way the engine records it.

The run goes through the real ``RunCore`` (plan, approvals, start, finish with the outcome in the same
transaction, as the engine does); faults and measurements are inserted directly, at moments the test clock sets.
CE-01 watches "share-link latency" (HTTP, ≤ 500 ms), RTO 5m, maximum duration 5m, a probe every 5 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from bot.alerting.models import RunSilence
from bot.records import service as records
from bot.records.models import FaultRecord, Measurement
from bot.runs.core import RunCore
from bot.runs.models import Run, RunState
from tests.conftest import Clock
from tests.core.helpers import approved_run

CONDITION = "share-link latency"
OWNER, APPROVER = "U0OLIVER", "rita"
BREACH = f"stop condition {CONDITION}: value 812 ms > threshold 500 ms"
LOST = (
    "controller lost: the chaosbot process running RUN-1 stopped renewing its lease; "
    "faults reverted from their persisted handles"
)


@dataclass
class Story:
    """One run and the moments of its fault, relative to the start (``t0``)."""

    core: RunCore
    clock: Clock
    run: Run
    t0: datetime
    samples: list[tuple[str, float, float | None, bool]] = field(default_factory=list)  # phase, at, value, ok

    @property
    def run_id(self) -> int:
        return self.run.id

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def sample(self, phase: str, seconds: float, value: float | None, ok: bool | None = None, detail: str = "") -> None:
        ok = (value is not None and value <= 500) if ok is None else ok
        self.samples.append((phase, seconds, value, ok))
        with self.core.db.transaction() as session:
            session.add(
                Measurement(
                    run_id=self.run_id,
                    condition=CONDITION,
                    phase=phase,
                    at=self.at(seconds),
                    value=value,
                    ok=ok,
                    detail=detail or (f"status 200, {value:.0f} ms" if value is not None else "probe error"),
                )
            )

    def fault(
        self,
        injected: float | None,
        reverted: float | None,
        state: str = "reverted",
        error: str = "",
        *,
        adapter: str = "redis",
        steps: list[dict[str, Any]] | None = None,
    ) -> None:
        with self.core.db.transaction() as session:
            session.add(
                FaultRecord(
                    run_id=self.run_id,
                    adapter=adapter,
                    revert_steps=steps,
                    handle={"url": "${CE01_REDIS_URL}"},
                    state=state,
                    injected_at=self.at(injected) if injected is not None else None,
                    reverted_at=self.at(reverted) if reverted is not None else None,
                    last_error=error or None,
                )
            )

    def silence(self, silence_id: str, matchers: dict[str, str], *, expired: float | None, error: str = "") -> None:
        """A silence made at the inject, ending 10 minutes in; expired (or its lift failed) at ``expired``."""
        with self.core.db.transaction() as session:
            session.add(
                RunSilence(
                    run_id=self.run_id,
                    silence_id=silence_id,
                    matchers=matchers,
                    created_at=self.at(1),
                    ends_at=self.at(600),
                    lift_requested_at=self.at(31),
                    expired_at=self.at(expired) if expired is not None else None,
                    attempts=0 if expired is not None else 1,
                    last_error=error or None,
                )
            )

    def finish(self, seconds: float, result: RunState, *, actor: str, reason: str, **outcome: Any) -> Run:
        self.clock.now = self.at(seconds)
        fields = {
            "result": result.value,
            "hypothesis_held": None,
            "recovery_seconds": None,
            "rto_seconds": 300.0,
            "breach": None,
            "summary": reason,
            **outcome,
        }

        def save(session: Session, _run: Run) -> None:
            records.save_outcome(session, run_id=self.run_id, at=self.clock(), **fields)

        return self.core.transitions.finish(actor, self.run_id, result, reason, also=save)


def begin(core: RunCore, clock: Clock, *, dry_run: bool = False, experiment: str = "CE-01") -> Story:
    """Planned by OWNER, approved, baseline taken, started a minute later (the clock moves on)."""
    run = approved_run(core, owner=OWNER, experiment=experiment)
    clock.advance(minutes=1)
    t0 = clock()
    story = Story(core, clock, run, t0)
    if experiment == "CE-01":
        for seconds, value in ((-10, 118.0), (-5, 124.0), (-1, 121.0)):
            story.sample("baseline", seconds, value)
    story.run = core.transitions.begin(OWNER, run.id, dry_run=dry_run)
    return story


def fault_samples(story: Story, values: list[float], *, start: float = 5, every: float = 5) -> None:
    for index, value in enumerate(values):
        story.sample("fault", start + index * every, value)


HELD_FAULT = [180.0, 240.0, 310.0, 290.0, 260.0, 330.0, 280.0, 250.0]


def held(core: RunCore, clock: Clock) -> Story:
    """Completed: latency rose but stayed under 500 ms; back to steady state 10 s after the revert."""
    story = begin(core, clock)
    story.fault(1, 301)
    fault_samples(story, HELD_FAULT, every=35)
    story.sample("recovery", 306, 140.0)
    story.sample("recovery", 311, 125.0)
    summary = "recovered in 10.0 s after the revert, within the RTO of 5m 00s: hypothesis held"
    story.finish(
        312,
        RunState.COMPLETED,
        actor="chaosbot",
        reason=f"maximum duration reached; {summary}",
        hypothesis_held=True,
        recovery_seconds=10.0,
        summary=summary,
    )
    return story


def slow_recovery(core: RunCore, clock: Clock) -> Story:
    """Completed, refuted: the steady state came back 7 minutes after the revert (RTO 5 minutes)."""
    story = begin(core, clock)
    story.fault(1, 301)
    fault_samples(story, HELD_FAULT, every=35)
    for seconds in range(306, 721, 60):
        story.sample("recovery", seconds, 650.0)
    story.sample("recovery", 721, 130.0)
    story.sample("recovery", 726, 120.0)
    summary = "recovered in 420.0 s after the revert, over the RTO of 5m 00s: hypothesis refuted"
    story.finish(
        727,
        RunState.COMPLETED,
        actor="chaosbot",
        reason=f"maximum duration reached; {summary}",
        hypothesis_held=False,
        recovery_seconds=420.0,
        summary=summary,
    )
    return story


def breached(core: RunCore, clock: Clock) -> Story:
    """Auto-aborted: latency climbed past 500 ms 30 s in; chaosbot reverted at once."""
    story = begin(core, clock)
    story.fault(1, 31)
    fault_samples(story, [210.0, 260.0, 340.0, 420.0, 480.0])
    story.sample("fault", 30, 812.0, ok=False, detail="value 812 ms > threshold 500 ms")
    story.finish(31, RunState.ABORTED, actor="chaosbot", reason=BREACH, hypothesis_held=False, breach=BREACH)
    return story


def aborted_by_person(core: RunCore, clock: Clock) -> Story:
    """A person aborted 40 s in; nothing was breached."""
    story = begin(core, clock)
    story.fault(1, 41)
    fault_samples(story, [200.0, 230.0, 220.0, 260.0, 240.0, 250.0, 245.0])
    story.finish(41, RunState.ABORTED, actor=APPROVER, reason="customer demo starting <now> & then")
    return story


ROLLBACK_STEPS = [
    {"name": "flip-flag-off", "status": "succeeded", "duration_seconds": 0.25, "error": None},
    {"name": "tell-the-<team>", "status": "failed", "duration_seconds": 1.5, "error": "answered HTTP 503 <!channel>"},
]


def rollback_failed(core: RunCore, clock: Clock) -> Story:
    """A person aborted a Chaos Toolkit run 40 s in; its first rollback ran, its second was refused."""
    story = begin(core, clock)
    error = "Chaos Toolkit rollbacks failed: 'tell-the-<team>' (answered HTTP 503 <!channel>)"
    story.fault(1, None, "failed", error, adapter="chaostoolkit", steps=ROLLBACK_STEPS)
    fault_samples(story, [200.0, 230.0, 220.0, 260.0, 240.0, 250.0, 245.0])
    story.finish(41, RunState.ABORTED, actor=APPROVER, reason="seen enough")
    return story


def controller_lost(core: RunCore, clock: Clock) -> Story:
    """The controlling process died 40 s in; another replica reverted 30 s later."""
    story = begin(core, clock)
    story.fault(1, 71)
    fault_samples(story, [200.0, 230.0, 220.0, 260.0, 240.0, 250.0, 245.0])
    story.finish(71, RunState.ABORTED, actor="chaosbot", reason=LOST)
    return story


def failed(core: RunCore, clock: Clock) -> Story:
    """The inject failed: nothing was applied, the run is marked failed."""
    story = begin(core, clock)
    story.fault(None, 2)  # nothing applied; the engine's clean-up revert succeeded
    story.finish(2, RunState.FAILED, actor="chaosbot", reason="inject failed: ConnectError: connection refused")
    return story


def probe_errors(core: RunCore, clock: Clock) -> Story:
    """Completed and held, but two samples could not be taken."""
    story = begin(core, clock)
    story.fault(1, 301)
    fault_samples(story, HELD_FAULT[:3], every=35)
    story.sample("fault", 110, None, ok=False, detail="probe error: ConnectError: connection refused")
    story.sample("fault", 115, None, ok=False, detail="probe error: ReadError")
    fault_samples(story, HELD_FAULT[3:], start=140, every=35)
    story.sample("recovery", 306, 140.0)
    story.sample("recovery", 311, 125.0)
    story.finish(
        312,
        RunState.COMPLETED,
        actor="chaosbot",
        reason="maximum duration reached",
        hypothesis_held=True,
        recovery_seconds=10.0,
        summary="recovered",
    )
    return story


ENDINGS = {
    "held": held,
    "slow recovery": slow_recovery,
    "breached": breached,
    "aborted by a person": aborted_by_person,
    "controller lost": controller_lost,
    "failed": failed,
}
