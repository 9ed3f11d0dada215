"""Alembic environment of the leadsync state store.

``StateStore.migrate()`` runs this with its own connection (already in a transaction) passed in
``config.attributes["connection"]``. Run by hand (``alembic -c sync/alembic.ini ...``), it connects to
``-x url=...``, else ``$LEADSYNC_STATE_URL``, else the default ``sqlite:///leadsync-state.db``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from sync.state import DEFAULT_STATE_URL, metadata, normalize_url

config = context.config
if config.config_file_name is not None:  # run by hand with sync/alembic.ini
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("LEADSYNC_STATE_URL")
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_STATE_URL
    )
    return normalize_url(url).render_as_string(hide_password=False)


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        transactional_ddl=True,  # SQLite does transactional DDL too: a failed upgrade leaves nothing
        render_as_batch=connection.dialect.name == "sqlite",  # autogenerate: SQLite's ALTER is limited
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
