"""PostgreSQL for tests: each test gets its own schema ``t_<uuid>`` in the database of
``$LEADSYNC_TEST_PG_URL`` (default: the local ``test`` database), reached through ``search_path``, so
parallel tests (pytest-xdist) never collide; the schema is dropped afterwards. An unreachable PostgreSQL
fails the test: it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

PG_URL_ENV = "LEADSYNC_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_admin_url() -> str:
    """The PostgreSQL database the tests create their schemas in."""
    return os.environ.get(PG_URL_ENV) or DEFAULT_PG_URL


def make_pg_url(schema: str, base: str | None = None) -> str:
    """``base`` (default :func:`pg_admin_url`) with ``search_path`` set to ``schema`` for every connection."""
    url = make_url(base or pg_admin_url())
    options = url.query.get("options")
    existing = (options if isinstance(options, str) else " ".join(options or ())).strip()
    option = f"-csearch_path={schema}"
    url = url.update_query_dict({"options": f"{existing} {option}".strip()})
    return url.render_as_string(hide_password=False)


def create_schema(prefix: str = "bench") -> tuple[str, str]:
    """A fresh schema ``<prefix>_<hex>`` for a benchmark or a scenario: ``(schema, its URL)``."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_admin_url(), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        admin.dispose()
    return schema, make_pg_url(schema)


def drop_schema(schema: str) -> None:
    admin = create_engine(pg_admin_url(), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()


def create_database(prefix: str = "bench") -> tuple[str, str]:
    """A fresh database ``<prefix>_<hex>`` beside the tests' one, for a scenario whose backends are cut by
    ``pg_terminate_backend`` (its connections are then exactly those with this ``datname``): ``(name, URL)``."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_admin_url(), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return name, make_url(pg_admin_url()).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    admin = create_engine(pg_admin_url(), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def terminate_backends(database: str) -> int:
    """``pg_terminate_backend`` every session on ``database`` (a PostgreSQL restart, as its clients see it,
    without restarting a server others share). Returns how many were terminated."""
    admin = create_engine(pg_admin_url(), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            cut = conn.exec_driver_sql(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %(db)s AND pid <> pg_backend_pid()",
                {"db": database},
            ).scalar()
    finally:
        admin.dispose()
    return int(cut or 0)


def pg_unavailable(reason: str) -> NoReturn:
    message = f"PostgreSQL unavailable at ${PG_URL_ENV} ({make_url(pg_admin_url())!s}): {reason}"
    # the state store is the product's memory: an untested backend is a failure, never a skip
    pytest.fail(message + " (start it, or point $LEADSYNC_TEST_PG_URL at one)", pytrace=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex}"
    admin = create_engine(pg_admin_url(), poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        except OperationalError as exc:
            pg_unavailable(str(exc.orig or exc).strip())
        try:
            yield make_pg_url(schema)
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.dispose()
