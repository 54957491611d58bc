"""Recording how a run ended: the final transition and its outcome, in one transaction, retried if needed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from bot.engine import applying, wording
from bot.engine.writes import PendingWrites
from bot.runs.flows import Lifecycle
from bot.runs.models import RunState
from bot.words import Words


@dataclass(frozen=True)
class Ending:
    """How a run ends: its result, who ended it and why, and the outcome fields stored with it."""

    result: RunState
    actor: str
    reason: str
    rto_seconds: float
    hypothesis_held: bool | None = None
    recovery_seconds: float | None = None
    breach: str | None = None
    summary: str | None = None

    def outcome(self) -> dict[str, object]:
        fields = asdict(self)
        del fields["actor"], fields["reason"]
        fields["result"] = self.result.value
        fields["summary"] = self.summary or self.reason or self.result.value
        return fields


class OutcomeRecorder:
    """Finish runs with their outcome. A database outage leaves the record to the spool (``PendingWrites``)."""

    def __init__(self, lifecycle: Lifecycle, writes: PendingWrites, clock: Callable[[], datetime]) -> None:
        self.lifecycle = lifecycle
        self.writes = writes
        self.clock = clock

    def finish(self, run_id: int, ending: Ending) -> Words:
        """Record the end; returns nothing to say, or a sentence to append when the record is spooled.

        Raises ``IllegalTransition`` when someone else ended the run first (they announce it, not us).
        """
        record = applying.run_ended(run_id, ending.actor, ending.reason, ending.outcome(), self.clock())
        if self.writes.write(record):
            return Words()
        return wording.record_pending()
