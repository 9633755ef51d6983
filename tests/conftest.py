"""Fixtures shared by every suite: real server and worker processes on a free port, and
PostgreSQL databases of their own. Helpers live in :mod:`tests.support`."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.cluster import FluxCluster, make_cluster, stop_process
from tests.support.waiting import wait_until

# Still imported from here by test modules not yet moved to tests.support.
__all__ = ["FluxCluster", "make_cluster", "stop_process", "wait_until"]

PG_URL = os.environ.get("FLUX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FluxCluster]:
    """A running server (SQLite) and no workers yet; stopped by pid afterwards."""
    c = make_cluster(tmp_path)
    try:
        c.start_server()
        yield c
    finally:
        c.stop()


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database (on the server of ``FLUX_TEST_PG``), dropped on
    exit; the test is skipped when PostgreSQL is unreachable."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield PG_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped afterwards."""
    with fresh_pg_database("flux_e2e") as url:
        yield url
