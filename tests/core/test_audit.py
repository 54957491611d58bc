"""The hash-chained audit log: it verifies after real work, catches tampering, and exports for the change log."""

from __future__ import annotations

import csv
import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.audit import service as audit
from bot.cli import main
from bot.runs.core import RunCore
from bot.runs.models import RunState
from storage.db import Database
from tests.core.conftest import SYDNEY
from tests.core.helpers import OWNER, actions, approve_all, events, plan_run, verify_chain


def realistic_history(core: RunCore) -> None:
    """RUN-1 completes (planned, 3 approvals, approved, started, a probe sample, completed); RUN-2 is cancelled."""
    run = plan_run(core, notes="first game day")
    approve_all(core, run.id)
    core.transitions.begin("rita", run.id)
    core.audit.record("rita", "probe.sample", run.id, condition="share-link latency", value=212.5)
    core.transitions.finish("rita", run.id, RunState.COMPLETED, reason="hypothesis held")
    other = plan_run(core, experiment="CE-05", environment="production")
    core.transitions.cancel(OWNER, other.id, "clashes with a client delivery")


def tamper(db: Database, sql: str, **params: object) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(sql), params)


@pytest.fixture
def cli_env(db: Database, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the CLI at the test database: the session's postgres_url, or the SQLite file."""
    url = request.getfixturevalue("postgres_url") if db.dialect == "postgresql" else db.url
    monkeypatch.setenv("DATABASE_URL", url)
    for name in ("CHAOSBOT_CATALOGUE", "CHAOSBOT_POLICY", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def test_chain_verifies_after_a_realistic_history(core: RunCore, db: Database) -> None:
    realistic_history(core)

    report = verify_chain(db)

    assert report.ok and report.problem is None
    assert report.checked == len(actions(db)) == 10
    assert [e.seq for e in events(db)] == list(range(1, 11))


def test_each_event_links_to_the_one_before(core: RunCore, db: Database) -> None:
    realistic_history(core)

    chain = events(db)

    assert chain[0].prev_hash == audit.GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(chain))
    assert len({e.hash for e in chain}) == len(chain)


def test_edited_payload_is_reported_as_altered(core: RunCore, db: Database) -> None:
    realistic_history(core)
    tamper(db, "UPDATE audit_events SET payload = :p WHERE seq = 2", p='{"role":"executive"}')

    report = verify_chain(db)

    assert not report.ok and report.seq == 2
    assert report.problem == "row 2 was altered (its hash does not match)"
    assert report.checked == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "mallory"), ("action", "run.cancelled"), ("run_id", 2)],
)
def test_any_edited_column_is_detected(core: RunCore, db: Database, column: str, value: object) -> None:
    realistic_history(core)
    tamper(db, f"UPDATE audit_events SET {column} = :v WHERE seq = 4", v=value)

    report = verify_chain(db)

    assert not report.ok and report.seq == 4 and "altered" in (report.problem or "")


def test_row_rewritten_with_a_fresh_hash_breaks_the_next_link(core: RunCore, db: Database) -> None:
    realistic_history(core)
    row = events(db)[1]
    forged = audit.event_hash(
        seq=row.seq, at=row.at, actor="mallory", action=row.action, run_id=row.run_id, payload=row.payload,
        prev_hash=row.prev_hash,
    )  # fmt: skip
    tamper(db, "UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = 2", h=forged)

    report = verify_chain(db)

    assert not report.ok and report.seq == 3
    assert report.problem == "row 3 does not link to row 2"


def test_deleted_middle_row_is_reported_missing(core: RunCore, db: Database) -> None:
    realistic_history(core)
    tamper(db, "DELETE FROM audit_events WHERE seq = 5")

    report = verify_chain(db)

    assert not report.ok and report.seq == 5
    assert report.problem == "row 5 is missing (found 6 next)"


def test_deleted_first_row_is_reported_missing(core: RunCore, db: Database) -> None:
    realistic_history(core)
    tamper(db, "DELETE FROM audit_events WHERE seq = 1")

    report = verify_chain(db)

    assert not report.ok and report.seq == 1 and "row 1 is missing" in (report.problem or "")


def test_deleted_newest_row_is_caught_by_the_head(core: RunCore, db: Database) -> None:
    realistic_history(core)
    tamper(db, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")

    report = verify_chain(db)

    assert not report.ok
    assert "newest rows were removed" in (report.problem or "")
    assert report.checked == 9


def test_empty_log_verifies(db: Database) -> None:
    report = verify_chain(db)

    assert report.ok and report.checked == 0


def test_verify_works_across_batches(core: RunCore, db: Database) -> None:
    for number in range(7):
        core.audit.record("rita", "command.status", None, n=number)
    tamper(db, "UPDATE audit_events SET payload = :p WHERE seq = 6", p='{"n":99}')

    with db.transaction() as session:
        report = audit.verify(session, batch=2)

    assert not report.ok and report.seq == 6


def test_event_appended_with_a_local_timestamp_still_verifies(db: Database) -> None:
    with db.transaction() as session:
        audit.append(session, actor="importer", action="run.imported", at=datetime(2025, 1, 1, 9, 0, tzinfo=SYDNEY))

    report = verify_chain(db)

    assert report.ok, report.problem


def test_timeline_holds_only_that_runs_events(core: RunCore, db: Database) -> None:
    realistic_history(core)

    with db.transaction() as session:
        timeline = audit.timeline(session, 2)

    assert [e.action for e in timeline] == ["run.planned", "run.cancelled"]


# -- the command line --------------------------------------------------------------------------------


@pytest.mark.usefixtures("cli_env")
def test_cli_audit_verify_says_intact_and_exits_zero(core: RunCore, capsys: pytest.CaptureFixture[str]) -> None:
    realistic_history(core)

    assert main(["audit", "verify"]) == 0

    out = capsys.readouterr().out
    assert "intact" in out and "10 events" in out


@pytest.mark.usefixtures("cli_env")
def test_cli_audit_verify_fails_naming_the_tampered_row(
    core: RunCore, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    realistic_history(core)
    tamper(db, "UPDATE audit_events SET payload = :p WHERE seq = 2", p="{}")

    code = main(["audit", "verify"])

    out = capsys.readouterr().out
    assert code != 0
    assert "row 2" in out and "intact" not in out


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_exports_runs_with_approvals_and_hash(
    core: RunCore, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    realistic_history(core)
    out = tmp_path / f"runs.{fmt}"

    assert main(["export", "runs", "--format", fmt, "-o", str(out)]) == 0

    rows = read_rows(out, fmt)
    assert [row["run"] for row in rows] == ["RUN-1", "RUN-2"]
    first, second = rows
    assert (first["state"], first["experiment"], first["owner"]) == ("completed", "CE-01", OWNER)
    assert first["experiment_hash"] == core.queries.run(1).experiment_hash
    approvals = first["approvals"] if fmt == "jsonl" else json.loads(first["approvals"])
    assert approvals == {"reliability_partner": "rita", "security_specialist": "sam", "stakeholder": "stella"}
    assert (second["state"], second["environment"]) == ("cancelled", "production")
    assert second["end_reason"] == "clashes with a client delivery"
    assert "wrote 2 runs" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_cli_exports_every_audit_event_in_order(core: RunCore, db: Database, tmp_path: Path, fmt: str) -> None:
    realistic_history(core)
    out = tmp_path / f"events.{fmt}"

    assert main(["export", "events", "--format", fmt, "-o", str(out)]) == 0

    rows = read_rows(out, fmt)
    assert [row["action"] for row in rows] == actions(db)
    assert [int(row["seq"]) for row in rows] == list(range(1, 11))
    assert [row["hash"] for row in rows] == [e.hash for e in events(db)]
    sample = rows[6]
    payload = sample["payload"] if fmt == "jsonl" else json.loads(sample["payload"])
    assert payload == {"condition": "share-link latency", "value": 212.5}


@pytest.mark.usefixtures("cli_env")
def test_cli_export_to_standard_output_is_jsonl_by_default(core: RunCore, capsys: pytest.CaptureFixture[str]) -> None:
    realistic_history(core)

    assert main(["export", "runs"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["run"] for line in lines] == ["RUN-1", "RUN-2"]


def read_rows(path: Path, fmt: str) -> list[dict[str, object]]:
    with path.open(encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            return [json.loads(line) for line in handle if line.strip()]
        return list(csv.DictReader(handle))
