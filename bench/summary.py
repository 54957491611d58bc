"""Time the monthly and quarterly summaries over 100,000 runs, on SQLite and on PostgreSQL.

Seeds (bulk inserts, not measured) 100,000 runs spread over the 24 months of 2025-2026 (team time zone
Australia/Sydney), with what the bot records for them: outcomes for the runs that ran, five measurements per
run that ran, four audit events per run, and action items for a third of the refuted or aborted runs and a
tenth of the others. Then runs ANALYZE (as autovacuum or a DBA would) and times ``bot.reports.summary.summarise``
for one month (2026-11) and one quarter (2026-Q4), each in its own transaction, ``--rounds`` times after one
warm-up. Targets: under 0.5 s on PostgreSQL, under 1 s on SQLite.

    .venv/bin/python bench/summary.py [--database sqlite|postgres|both] [--runs 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _harness as h
from sqlalchemy import insert, text, update

from bot.audit.models import AuditHead
from bot.catalogue.service import load_catalogue
from bot.reports.periods import parse_period
from bot.reports.summary import summarise
from bot.schema import Base
from storage.db import Database
from storage.migrate import upgrade

ZONE = ZoneInfo("Australia/Sydney")
SPAN_START = datetime(2025, 1, 1, tzinfo=ZONE).astimezone(UTC)
SPAN_END = datetime(2027, 1, 1, tzinfo=ZONE).astimezone(UTC)
NOW = datetime(2027, 1, 10, tzinfo=ZONE).astimezone(UTC)  # both periods are over: the figures are final
PERIODS = ("2026-11", "2026-Q4")
TARGET_SECONDS = {"postgresql": 0.5, "sqlite": 1.0}
CHUNK = 10_000
STATES = [("completed", 70), ("aborted", 15), ("failed", 5), ("cancelled", 5), ("expired", 3), ("rejected", 2)]
RTOS = (30.0, 60.0, 120.0, 300.0)
CONDITIONS = ("p95 latency", "error rate")
TABLES = ("runs", "outcomes", "measurements", "audit_events", "action_items")  # in foreign-key order
Batch = dict[str, list[dict[str, Any]]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--output", type=Path, default=h.RESULTS / "summary.json")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite file")
    return parser.parse_args(argv)


# -- seeding -----------------------------------------------------------------------------------------------


class Seeder:
    """Generates the rows in chunks and inserts each chunk with one executemany per table."""

    def __init__(self, runs: int, experiments: list[str], seed: int) -> None:
        self.total = runs
        self.experiments = experiments
        self.random = random.Random(seed)
        self.counts: dict[str, int] = {}
        self.audit_seq = 0
        self.measurement_id = 0

    def chunks(self) -> Iterator[Batch]:
        span = (SPAN_END - SPAN_START).total_seconds()
        for first in range(1, self.total + 1, CHUNK):
            batch: Batch = {table: [] for table in TABLES}
            for run_id in range(first, min(first + CHUNK, self.total + 1)):
                planned = SPAN_START + timedelta(seconds=span * (run_id - 0.5) / self.total)
                self.add_run(batch, run_id, planned)
            yield batch

    def add_run(self, batch: Batch, run_id: int, planned: datetime) -> None:
        rnd = self.random
        # CE-06 stops being run in the last four months, so "not run in 90 days" has something to report.
        pool = self.experiments if planned < SPAN_END - timedelta(days=120) else self.experiments[:-1]
        experiment = rnd.choice(pool)
        state = rnd.choices([s for s, _ in STATES], weights=[w for _, w in STATES])[0]
        ran = state in ("completed", "aborted", "failed")
        started = planned + timedelta(minutes=rnd.randint(0, 20)) if ran else None
        ended = started + timedelta(minutes=rnd.randint(5, 30)) if started else planned + timedelta(hours=1)
        breach = None
        if state == "aborted" and rnd.random() < 0.6:
            breach = f"{rnd.choice(CONDITIONS)} {rnd.randint(6, 20)} > max 5"
        ended_by = "chaosbot" if breach or state == "failed" else "U0PERSON"
        reason = breach or ("inject failed" if state == "failed" else "stopped by hand" if state == "aborted" else None)
        batch["runs"].append(
            {
                "id": run_id,
                "experiment_id": experiment,
                "experiment": {"id": experiment},
                "experiment_hash": "0" * 64,
                "environment": rnd.choice(("staging", "staging", "production")),
                "owner": f"U0OWNER{rnd.randint(1, 40)}",
                "planned_start": planned,
                "rollback_steps": "revert",
                "notes": "",
                "state": state,
                "version": 4,
                "created_at": planned - timedelta(days=2),
                "updated_at": ended,
                "started_at": started,
                "dry_run": False,
                "ended_at": ended,
                "ended_by": ended_by if ran else None,
                "end_reason": reason,
            }
        )
        for action, at in (
            ("run.planned", planned - timedelta(days=2)),
            ("approval.given", planned - timedelta(days=1)),
            ("run.started" if ran else "run.expired", started or ended),
            ("run.ended", ended),
        ):
            self.audit_seq += 1
            batch["audit_events"].append(
                {
                    "seq": self.audit_seq,
                    "at": at,
                    "actor": "U0OWNER1",
                    "action": action,
                    "run_id": run_id,
                    "payload": "{}",
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                }
            )
        if not ran:
            return
        held: bool | None = None
        if state == "completed":
            held = rnd.random() < 0.9
        elif breach:
            held = False
        rto = rnd.choice(RTOS)
        recovery = None if (state == "aborted" and rnd.random() < 0.1) else round(rnd.uniform(5, rto * 1.5), 1)
        batch["outcomes"].append(
            {
                "run_id": run_id,
                "result": state,
                "hypothesis_held": held,
                "recovery_seconds": recovery,
                "rto_seconds": rto,
                "breach": breach,
                "summary": "",
                "recorded_at": ended,
            }
        )
        assert started is not None
        for index in range(5):
            self.measurement_id += 1
            batch["measurements"].append(
                {
                    "id": self.measurement_id,
                    "run_id": run_id,
                    "condition": rnd.choice(CONDITIONS),
                    "phase": ("baseline", "fault", "fault", "fault", "recovery")[index],
                    "at": started + timedelta(seconds=30 * index),
                    "value": rnd.uniform(0, 10),
                    "ok": True,
                    "detail": "",
                }
            )
        if rnd.random() < (0.33 if held is False or state == "aborted" else 0.1):
            for _ in range(rnd.choice((1, 1, 2))):
                created = ended + timedelta(hours=rnd.randint(1, 48))
                done = created + timedelta(days=rnd.randint(1, 30)) if rnd.random() < 0.6 else None
                batch["action_items"].append(
                    {
                        "run_id": run_id,
                        "what": "follow up on the breach",
                        "owner": f"U0FIXER{rnd.randint(1, 20)}",
                        "due_on": (created + timedelta(days=14)).astimezone(ZONE).date(),
                        "status": "done" if done else "open",
                        "version": 2 if done else 1,
                        "created_by": "U0OWNER1",
                        "created_at": created,
                        "done_by": "U0FIXER1" if done else None,
                        "done_at": done,
                        "backlog_attempts": 0,
                    }
                )

    def seed(self, database: Database) -> float:
        began = time.perf_counter()
        with database.engine.begin() as connection:
            for batch in self.chunks():
                for name, rows in batch.items():
                    if rows:
                        connection.execute(insert(Base.metadata.tables[name]), rows)
                        self.counts[name] = self.counts.get(name, 0) + len(rows)
            connection.execute(update(AuditHead).values(seq=self.audit_seq, hash="0" * 64))
            if database.dialect == "postgresql":
                for table, column in (("runs", "id"), ("measurements", "id"), ("action_items", "id")):
                    connection.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                            f"(SELECT max({column}) FROM {table}))"
                        )
                    )
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("ANALYZE"))
        return time.perf_counter() - began


# -- timing ------------------------------------------------------------------------------------------------


def time_summaries(database: Database, experiments: list[str], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label in PERIODS:
        period = parse_period(label)
        seconds: list[float] = []
        summary = None
        for round_index in range(rounds + 1):  # the first is a warm-up
            began = time.perf_counter()
            with database.transaction() as session:
                summary = summarise(session, period, experiments=experiments, zone=ZONE, now=NOW)
            if round_index:
                seconds.append(time.perf_counter() - began)
        assert summary is not None
        results[label] = {
            **h.summary_ms(seconds),
            "runs_in_period": summary.runs_total,
            "runs_listed": len(summary.runs),
            "action_items_open_at_end": summary.actions.open,
            "not_run_in_90_days": [entry.experiment_id for entry in summary.not_run],
        }
    return results


@contextlib.contextmanager
def database_for(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "postgres":
        with h.scratch_postgres() as url:
            yield url
    else:
        yield f"sqlite:///{workdir / 'summary.db'}"


def bench_one(kind: str, args: argparse.Namespace, workdir: Path, experiments: list[str]) -> dict[str, Any]:
    with database_for(kind, workdir) as url:
        upgrade(url)
        database = Database(url)
        try:
            seeder = Seeder(args.runs, experiments, args.seed)
            print(f"{kind}: seeding {args.runs:,} runs ...", flush=True)
            seed_seconds = seeder.seed(database)
            print(
                f"{kind}: seeded {sum(seeder.counts.values()):,} rows in {seed_seconds:.1f} s; timing ...", flush=True
            )
            timings = time_summaries(database, experiments, args.rounds)
            return {
                "dialect": database.dialect,
                "seed_seconds": round(seed_seconds, 1),
                "rows": seeder.counts,
                "summaries": timings,
            }
        finally:
            database.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    h.terminate_on_sigterm()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    experiments = [experiment.id for experiment in load_catalogue().experiments]
    workdir = Path(tempfile.mkdtemp(prefix="chaosbot-bench-summary-"))
    results: dict[str, Any] = {}
    try:
        for kind in kinds:
            results[kind] = bench_one(kind, args, workdir, experiments)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows, within = [], True
    for kind, result in results.items():
        target = TARGET_SECONDS[result["dialect"]]
        for label, timing in result["summaries"].items():
            ok = timing["max_ms"] < target * 1000
            within &= ok
            rows.append(
                [
                    kind,
                    label,
                    timing["runs_in_period"],
                    timing["median_ms"],
                    timing["p90_ms"],
                    timing["max_ms"],
                    f"< {target * 1000:.0f}",
                    "yes" if ok else "NO",
                ]
            )
    print()
    print(
        h.markdown_table(
            ["database", "period", "runs in period", "median ms", "p90 ms", "max ms", "target ms", "met"], rows
        )
    )
    document = {
        "bench": "summary",
        "machine": h.machine(),
        "runs": args.runs,
        "rounds": args.rounds,
        "periods": list(PERIODS),
        "now": NOW.isoformat(),
        "results": results,
    }
    h.write_json(args.output, document)
    print(f"\nwritten {args.output}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
