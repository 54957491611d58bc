"""Alembic environment: the schema is ``bot.schema``'s metadata (every domain's tables); SQLite gets batch mode
for ALTERs. The one module under storage/ that imports ``bot``: the tables are defined above storage."""

from __future__ import annotations

from alembic import context

import bot.schema
from storage.db import create_db_engine

target_metadata = bot.schema.Base.metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "alembic_config() always sets sqlalchemy.url"
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


run_migrations()
