"""The migrations build exactly the schema the models declare, on both databases; and ``bot.schema`` gathers
every table, so the comparison covers the whole schema."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import bot.schema
from storage.db import Database
from storage.migrate import head_revision

_TABLES_AFTER = """
import importlib, pkgutil, sys
import bot
from storage.db import Base
if sys.argv[1] == "all":
    for module in pkgutil.walk_packages(bot.__path__, "bot."):
        importlib.import_module(module.name)
else:
    importlib.import_module("bot.schema")
print(" ".join(sorted(Base.metadata.tables)))
print(" ".join(sorted(index.name or "" for table in Base.metadata.tables.values() for index in table.indexes)))
"""


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, bot.schema.Base.metadata)
        assert context.get_current_revision() == head_revision()
    assert differences == [], "a model changed without a migration (run alembic revision --autogenerate)"


def test_the_schema_module_gathers_every_table_and_index() -> None:
    def tables(which: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", _TABLES_AFTER, which], check=True, capture_output=True, text=True
        ).stdout

    assert tables("schema") == tables("all"), "a table or index is defined outside bot.schema's imports"
