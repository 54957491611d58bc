"""What the starter, the aborter and orphan recovery share: built once by ``RunEngine``."""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.announcer import Announcer
from bot.engine.coordination import Coordination
from bot.engine.outcomes import OutcomeRecorder
from bot.engine.revert import Reverter
from bot.engine.rollbacks import RollbackStore
from bot.engine.supervisor import Supervisor
from bot.engine.writes import PendingWrites
from bot.runs.flows import Lifecycle


@dataclass(frozen=True)
class Parts:
    lifecycle: Lifecycle
    coordination: Coordination
    rollbacks: RollbackStore
    supervisor: Supervisor
    revert: Reverter
    recorder: OutcomeRecorder
    announcer: Announcer
    writes: PendingWrites


class EnginePart:
    """Base of the engine's pieces: each reads the shared parts as attributes of its own."""

    def __init__(self, parts: Parts) -> None:
        self.lifecycle, self.db, self.coordination = parts.lifecycle, parts.lifecycle.db, parts.coordination
        self.rollbacks, self.supervisor, self.revert = parts.rollbacks, parts.supervisor, parts.revert
        self.recorder, self.announcer, self.writes = parts.recorder, parts.announcer, parts.writes
        self.clock = parts.supervisor.clock
