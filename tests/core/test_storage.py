"""Migrations from an empty database, the start-up migration check, and UTC timestamps on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from bot.audit.models import AuditHead
from bot.cli import main
from bot.engine.models import Lease
from bot.safety.models import KillSwitch
from storage.db import Database, NotMigratedError
from storage.migrate import head_revision, upgrade
from tests.core.conftest import SYDNEY
from tests.services import scratch_postgres_database


def assert_seeded(database: Database) -> None:
    with database.transaction() as session:
        head = session.get(AuditHead, 1)
        lever = session.get(KillSwitch, 1)
        assert head is not None and (head.seq, head.hash) == (0, "0" * 64)
        assert lever is not None and lever.engaged is False


def assert_migrates_from_empty(url: str) -> None:
    database = Database(url)
    try:
        with pytest.raises(NotMigratedError) as caught:
            database.check_migrated()
        assert "chaosbot db upgrade" in str(caught.value)
        assert "none (empty)" in str(caught.value)

        upgrade(url)

        database.check_migrated()
        assert_seeded(database)
    finally:
        database.dispose()


def test_fresh_sqlite_file_migrates_from_empty(tmp_path: Path) -> None:
    assert_migrates_from_empty(f"sqlite:///{tmp_path / 'new' / 'chaosbot.db'}")


def test_brand_new_postgres_database_migrates_from_empty() -> None:
    with scratch_postgres_database() as url:
        assert_migrates_from_empty(url)


def test_upgrade_twice_is_harmless_and_keeps_the_seed_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chaosbot.db'}"
    upgrade(url)
    upgrade(url)

    database = Database(url)
    database.check_migrated()
    assert_seeded(database)
    with database.transaction() as session:
        assert session.scalar(text("SELECT count(*) FROM audit_head")) == 1
        assert session.scalar(text("SELECT count(*) FROM kill_switch")) == 1
    database.dispose()


def test_migration_check_names_the_head_revision_it_needs(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'empty.db'}")

    with pytest.raises(NotMigratedError) as caught:
        database.check_migrated()

    assert str(head_revision()) in str(caught.value)
    database.dispose()


def test_migration_error_never_shows_the_database_password() -> None:
    error = NotMigratedError("postgresql+psycopg://chaos:hunter2@db.internal/chaosbot", None, "0001")

    assert "hunter2" not in str(error)
    assert "db.internal" in str(error)


def test_cli_db_upgrade_then_audit_verify_on_a_fresh_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")

    assert main(["db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["audit", "verify"]) == 0
    assert "intact" in capsys.readouterr().out


def test_cli_refuses_an_unmigrated_database_and_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'never-upgraded.db'}")

    assert main(["audit", "verify"]) != 0
    assert "chaosbot db upgrade" in capsys.readouterr().err


def test_aware_datetime_round_trips_as_the_same_instant_in_utc(db: Database) -> None:
    sydney_time = datetime(2025, 3, 9, 14, 30, 15, 123456, tzinfo=SYDNEY)
    with db.transaction() as session:
        session.add(Lease(run_id=1, holder="worker-a", expires_at=sydney_time))

    with db.transaction() as session:
        stored = session.get(Lease, 1)
        assert stored is not None
        assert stored.expires_at == sydney_time
        assert stored.expires_at.utcoffset() == timedelta(0)
        assert stored.expires_at.tzinfo is UTC


def test_comparisons_in_queries_use_the_instant_not_the_wall_clock(db: Database) -> None:
    utc_time = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    with db.transaction() as session:
        session.add(Lease(run_id=1, holder="worker-a", expires_at=utc_time))

    # 09:59 in Sydney is 23:59 UTC the day before: earlier, although its wall clock reads later.
    just_before = datetime(2025, 6, 1, 9, 59, tzinfo=SYDNEY)
    just_after = datetime(2025, 6, 1, 10, 1, tzinfo=SYDNEY)
    with db.transaction() as session:
        assert session.scalars(select(Lease).where(Lease.expires_at > just_before)).all()
        assert not session.scalars(select(Lease).where(Lease.expires_at > just_after)).all()


def test_naive_datetime_is_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), db.transaction() as session:
        session.add(Lease(run_id=1, holder="worker-a", expires_at=datetime(2025, 1, 1, 12, 0)))
        session.flush()

    with db.transaction() as session:
        assert session.get(Lease, 1) is None
