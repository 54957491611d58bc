"""The migrations build exactly the schema the models declare, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import storage.models
from storage.db import Database
from storage.migrate import head_revision


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, storage.models.Base.metadata)
        assert context.get_current_revision() == head_revision()
    assert differences == [], "a model changed without a migration (run alembic revision --autogenerate)"
