"""The start-up migration check reads revisions without alembic; it must agree with alembic itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext

from storage.db import Database, declared_head, stamped_revision
from storage.migrate import head_revision, upgrade


def test_the_declared_head_is_alembics_head() -> None:
    assert declared_head() == head_revision()


def test_the_stamped_revision_is_what_alembic_reads(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'chaosbot.db'}")
    try:
        assert stamped_revision(database.engine) is None
        upgrade(database.url, "0003")
        with database.engine.connect() as connection:
            assert stamped_revision(database.engine) == MigrationContext.configure(connection).get_current_revision()
        assert stamped_revision(database.engine) == "0003"
    finally:
        database.dispose()


def test_a_branched_history_is_refused(tmp_path: Path) -> None:
    for name, revision, parent in (("a", "1", None), ("b", "2", "1"), ("c", "3", "1")):
        (tmp_path / f"{name}.py").write_text(f"revision: str = {revision!r}\ndown_revision = {parent!r}\n")

    with pytest.raises(RuntimeError, match="several heads"):
        declared_head(tmp_path)
