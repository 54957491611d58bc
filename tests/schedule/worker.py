"""A replica of the scheduler in its own OS process, for the exactly-once tests.

    python -m tests.schedule.worker URL OUT --seconds 4 --lease 2 [--work 0.1] [--hang]

Ticks every 50 ms for ``--seconds``; each handler call appends one JSON line to OUT (O_APPEND, so two
processes can share the file). With ``--hang`` the first call writes its line and then sleeps forever,
like a replica that claimed a firing and froze, to be killed by the test.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta

from bot.policy.service import load_policy
from bot.runs.models import Run
from bot.schedule.service import Scheduler
from storage.db import Database, utcnow


class FileHandler:
    def __init__(self, out: str, holder: str, hang: bool, work: float) -> None:
        self.out, self.holder, self.hang, self.work = out, holder, hang, work

    def _record(self, kind: str, run: Run) -> None:
        line = json.dumps({"holder": self.holder, "kind": kind, "run": run.id, "at": utcnow().isoformat()}) + "\n"
        descriptor = os.open(self.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(descriptor, line.encode())
        finally:
            os.close(descriptor)
        if self.hang:
            time.sleep(3600)
        time.sleep(self.work)  # a handler takes time (Slack calls), which lets the other replica claim meanwhile

    def notice(self, run: Run) -> None:
        self._record("notice", run)

    def auto_start(self, run: Run) -> str | None:
        self._record("auto_start", run)
        return None

    def missed(self, run: Run, kind: str) -> None:
        self._record(f"missed:{kind}", run)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--work", type=float, default=0.0, help="seconds each handler call takes")
    args = parser.parse_args()
    holder = f"pid-{os.getpid()}"
    db = Database(args.url)
    scheduler = Scheduler(
        db,
        load_policy(),
        FileHandler(args.out, holder, args.hang, args.work),
        holder=holder,
        lease=timedelta(seconds=args.lease),
    )
    print("ready", flush=True)
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        scheduler.tick()
        time.sleep(0.05)
    db.dispose()


if __name__ == "__main__":
    main()
