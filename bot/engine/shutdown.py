"""A shutdown that never leaves a fault unwatched (SIGTERM: a rolling deploy, ``docker stop``, a pod deletion).

For each run this process watches: when another replica is alive (the replica registry), the run is handed
over: its lease is marked and lapses at once, this process keeps watching and renewing the fault until the
other replica's dead man's switch sweep has adopted it (it holds the lease), then lets go. This is not an
abort: the experiment goes on. A run nobody adopts within the hand-over time, or every run when no other
replica lives, is reverted and aborted as "chaosbot was shut down" before the process exits.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from bot.engine import wording
from bot.engine.aborter import Aborter
from bot.engine.announcer import Announcer
from bot.engine.coordination import Coordination
from bot.engine.endings import ENGINE_ACTOR
from bot.engine.outage import DB_UNAVAILABLE
from bot.engine.supervisor import Supervisor
from bot.errors import DomainError

log = logging.getLogger(__name__)

HANDOVER_SECONDS = 12.0  # two dead man's switch sweeps (every 5 s) plus margin
POLL_SECONDS = 0.2
MAX_PARALLEL_ABORTS = 16


class Shutdown:
    def __init__(
        self, supervisor: Supervisor, coordination: Coordination, announcer: Announcer, aborter: Aborter
    ) -> None:
        self.supervisor, self.coordination, self.announcer, self.aborter = supervisor, coordination, announcer, aborter

    def run(self, handover_seconds: float) -> None:
        runs = self.supervisor.watching()
        if not runs:
            return
        successors = self._successors()
        handed = [run_id for run_id in runs if successors and self._hand_over(run_id)]
        left = self._wait_for_adoption(handed, time.monotonic() + handover_seconds)
        reclaimed = [run_id for run_id in left if self._reclaim(run_id)]
        self._abort([run_id for run_id in runs if run_id not in handed] + reclaimed)

    def _successors(self) -> list[str]:
        try:
            return self.coordination.live_replicas(besides=self.supervisor.holder)
        except DB_UNAVAILABLE:
            return []

    def _hand_over(self, run_id: int) -> bool:
        if not self.supervisor.hand_over(run_id):
            return False
        log.info("handing run %s over to another replica", run_id)
        self.announcer.tell(run_id, wording.handing_over(run_id, self.supervisor.holder))
        return True

    def _wait_for_adoption(self, handed: list[int], deadline: float) -> list[int]:
        """Let go of each run once adopted; returns those nobody adopted by the deadline."""
        waiting = list(handed)
        while waiting:
            for run_id in list(waiting):
                # Adopted, or ended meanwhile (aborted through another replica: our watcher saw it and stopped).
                if run_id not in self.supervisor.watching() or self.supervisor.adopted_elsewhere(run_id):
                    self.supervisor.forget(run_id)
                    waiting.remove(run_id)
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        return waiting

    def _reclaim(self, run_id: int) -> bool:
        """Take a handed-over run back to revert it; False when another replica adopted it at the last moment."""
        if self.supervisor.hold(run_id):
            log.warning("nobody adopted run %s in time; reverting it before shutting down", run_id)
            return True
        self.supervisor.forget(run_id)
        return False

    def _abort(self, run_ids: list[int]) -> None:
        if not run_ids:
            return
        with ThreadPoolExecutor(min(MAX_PARALLEL_ABORTS, len(run_ids)), thread_name_prefix="chaosbot-stop") as pool:
            list(pool.map(self._abort_one, run_ids))

    def _abort_one(self, run_id: int) -> None:
        try:
            self.aborter.abort(ENGINE_ACTOR, run_id, wording.SHUT_DOWN_REASON)
        except DomainError as exc:  # it ended meanwhile
            log.info("run %s not aborted at shutdown: %s", run_id, exc.message)
        except Exception:
            log.exception("aborting run %s at shutdown failed", run_id)
