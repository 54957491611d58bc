"""The ``db`` fixture of tests/conftest.py, with the scheduling tables emptied too."""

from __future__ import annotations

import pytest

from storage.db import Database
from tests.schedule.factories import clean


@pytest.fixture
def db(db: Database) -> Database:
    return clean(db)


@pytest.fixture
def pg_db(pg_db: Database) -> Database:
    return clean(pg_db)
