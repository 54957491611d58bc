"""A long PostgreSQL outage loses nothing: an abort's records go to the local spool and land once when the
database is back (a new process replays the spool at start); the audit chain stays valid."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from adapters.base import FaultHandle, RevertStep
from bot.audit import service as audit
from bot.audit.models import AuditEvent
from bot.engine import applying
from bot.engine.applying import RecordWriter
from bot.engine.coordination import DatabaseCoordination
from bot.engine.models import SpoolApplied
from bot.engine.spool import Spool, SpoolRecord, spool_folder
from bot.engine.writes import PendingWrites
from bot.records import service as records
from bot.runs.models import RunState
from storage.db import Database, utcnow
from tests.engine.conftest import OWNER, World
from tests.engine.lab import wait_for
from tests.engine.tcp_proxy import TcpProxy
from tests.engine.test_kill_switch import fault_states


@pytest.fixture
def proxied(postgres_url: str, postgres_db: Database) -> Iterator[tuple[Database, TcpProxy]]:
    """The test PostgreSQL behind a proxy the test can cut (``postgres_db`` only to reset the tables)."""
    from tests.conftest import _reset_postgres

    _reset_postgres(postgres_db)
    url = make_url(postgres_url)
    proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1")
    database = Database(url.set(port=proxy.port).render_as_string(hide_password=False))
    yield database, proxy
    database.dispose()
    proxy.close()


def aborted_events(db: Database, run_id: int) -> int:
    with db.transaction() as session:
        query = select(func.count()).where(AuditEvent.run_id == run_id, AuditEvent.action == "run.aborted")
        return int(session.scalar(query) or 0)


def chain_ok(db: Database) -> bool:
    with db.transaction() as session:
        return audit.verify(session).ok


def outage_abort(world: World, proxy: TcpProxy) -> int:
    """Start a run, cut the database, abort (it reverts), close the process: the records stay spooled."""
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    proxy.cut()
    result = engine.abort(OWNER, run_id, "outage drill")
    assert result.reverted and not world.lab.fault_on
    engine.close(deadline_seconds=0.5)
    return run_id


def test_an_abort_during_an_outage_lands_once_after_a_restart(
    proxied: tuple[Database, TcpProxy], make_world: Callable[..., World]
) -> None:
    db, proxy = proxied
    world = make_world(db)
    aborting = utcnow()
    run_id = outage_abort(world, proxy)
    aborted = utcnow()
    assert world.spool_dir is not None and list(world.spool_dir.rglob("*.jsonl"))

    proxy.restore()
    assert world.run(run_id).run_state is RunState.RUNNING  # only the spool knows yet
    time.sleep(0.5)  # the outage lasts: the replay comes well after the abort
    world.engine()  # the process restarts: the spool is replayed at start

    wait_for(lambda: world.run(run_id).run_state is RunState.ABORTED, what="the spooled end of the run")
    wait_for(lambda: not list(world.spool_dir.rglob("*.jsonl")), what="the spool emptied")  # type: ignore[union-attr]
    assert fault_states(world, run_id) == ["reverted"]
    assert world.run(run_id).end_reason == "outage drill"
    ended_at = world.run(run_id).ended_at
    assert ended_at is not None and aborting <= ended_at <= aborted, "the run is dated when it ended, not replayed"
    assert aborted_events(db, run_id) == 1
    assert chain_ok(db)


def test_the_dead_mans_switch_never_takes_a_run_whose_spooled_abort_has_not_landed_yet(
    proxied: tuple[Database, TcpProxy], postgres_db: Database, make_world: Callable[..., World]
) -> None:
    """The outage outlasts the run's lease: once the database is back, the sweep must find the abort's end in
    the records (replaying the spool first), not revert the run a second time and call it "controller lost"."""
    db, proxy = proxied
    world = make_world(db)
    assert world.spool_dir is not None
    writes = PendingWrites(Spool(spool_folder(world.spool_dir, db.url)))
    engine = world.engine(lease_ttl=timedelta(seconds=1), writes=writes)
    writes.close(deadline_seconds=0)  # no background replay (records still spool): only the sweep can land them
    run_id = world.approved()
    engine.start(OWNER, run_id)
    proxy.cut()
    assert engine.abort(OWNER, run_id, "outage drill").reverted and not world.lab.fault_on
    past_the_proxy = DatabaseCoordination(postgres_db)
    wait_for(lambda: past_the_proxy.expired([run_id]) == [run_id], what="the run's lease lapsed in the outage")
    proxy.restore()
    assert world.run(run_id).run_state is RunState.RUNNING  # only the spool knows the run ended

    assert engine.recover_orphans() == []

    run = world.run(run_id)
    assert (run.run_state, run.end_reason) == (RunState.ABORTED, "outage drill")
    assert len(world.lab.times("revert")) == 1
    assert aborted_events(db, run_id) == 1


def test_a_replay_interrupted_midway_and_repeated_applies_nothing_twice(
    proxied: tuple[Database, TcpProxy], make_world: Callable[..., World], tmp_path: Path
) -> None:
    db, proxy = proxied
    world = make_world(db)
    run_id = outage_abort(world, proxy)
    proxy.restore()
    assert world.spool_dir is not None
    folder = spool_folder(world.spool_dir, db.url)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    writer = RecordWriter(world.core)
    applied: list[str] = []

    def dies_after_the_first(record: SpoolRecord) -> None:
        if applied:
            raise OperationalError("INSERT", {}, ConnectionResetError("the database went away again"))
        writer(record)
        applied.append(record.kind)

    spool = Spool(folder)
    assert not PendingWrites(spool, apply=dies_after_the_first).replay()
    assert applied == ["faults_reverted"] and world.run(run_id).run_state is RunState.RUNNING

    assert PendingWrites(spool, apply=writer).replay()  # repeated: the rest lands
    for path in copy.iterdir():  # a crash after applying, before the file was deleted: replayed again
        shutil.copy(path, folder / path.name)
    assert PendingWrites(spool, apply=writer).replay()

    assert world.run(run_id).run_state is RunState.ABORTED
    assert fault_states(world, run_id) == ["reverted"]
    assert aborted_events(db, run_id) == 1
    spooled = [SpoolRecord.from_line(line).id for path in copy.iterdir() for line in path.read_bytes().splitlines()]
    with db.transaction() as session:
        assert len(spooled) == 2 and all(session.get(SpoolApplied, record_id) for record_id in spooled)
    assert chain_ok(db)
    assert not list(world.spool_dir.rglob("*.jsonl"))


def test_a_late_replayed_inject_never_undoes_a_revert_recorded_since(
    sqlite_db: Database, make_world: Callable[..., World]
) -> None:
    world = make_world(sqlite_db)
    engine = world.engine()
    run_id = world.approved()
    engine.start(OWNER, run_id)
    with sqlite_db.transaction() as session:
        fault = records.faults(session, run_id=run_id)[0]
        handle = FaultHandle.from_json(fault.handle)
    engine.abort(OWNER, run_id, "done")
    assert world.spool_dir is not None
    writes = PendingWrites(Spool(spool_folder(world.spool_dir, sqlite_db.url)), apply=RecordWriter(world.core))

    writes.later(applying.fault_injected(run_id, fault.id, handle, utcnow()))  # spooled during an outage
    assert writes.replay()

    assert fault_states(world, run_id) == ["reverted"]
    writes.close(deadline_seconds=0.1)


def test_a_spooled_revert_keeps_each_rollback_s_result_and_an_older_record_without_them_still_lands(
    sqlite_db: Database, make_world: Callable[..., World]
) -> None:
    world = make_world(sqlite_db)
    run_id = world.approved()
    engine = world.engine()
    engine.start(OWNER, run_id)
    assert engine.abort(OWNER, run_id, "done").reverted  # nothing else writes this fault from now on
    with world.db.transaction() as session:
        [fault_id] = [fault.id for fault in records.faults(session, run_id=run_id)]
    steps = {fault_id: (RevertStep("flip-flag-off", True, 0.2), RevertStep("tell", False, 1.0, "answered HTTP 503"))}
    record = SpoolRecord.from_line(applying.faults_reverted(run_id, {fault_id: "refused"}, utcnow(), steps).to_line())

    RecordWriter(world.core)(record)

    with world.db.transaction() as session:
        [fault] = records.faults(session, run_id=run_id)
        assert fault.state == "failed" and fault.steps() == list(steps[fault_id])
    older = applying.faults_reverted(run_id, {fault_id: None}, utcnow())
    del older.data["steps"]  # spooled by a process from before rollback results were kept
    RecordWriter(world.core)(older)
    with world.db.transaction() as session:
        [fault] = records.faults(session, run_id=run_id)
        assert fault.state == "reverted" and [step.name for step in fault.steps()] == ["flip-flag-off", "tell"]
