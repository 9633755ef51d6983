"""Fixtures shared by every suite: a real server process on a free port, and a PostgreSQL
database of a test's own. Helpers live in :mod:`tests.support`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import FluxCluster, make_cluster
from tests.support.postgres import fresh_pg_database


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FluxCluster]:
    """A running server (SQLite) and no workers yet; stopped by pid afterwards."""
    c = make_cluster(tmp_path)
    try:
        c.start_server()
        yield c
    finally:
        c.stop()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped afterwards."""
    with fresh_pg_database("flux_e2e") as url:
        yield url
