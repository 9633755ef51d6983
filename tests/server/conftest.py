"""Fixtures for the server tests: an in-process server (its lifespan, a streaming ASGI
transport, the real client) on SQLite or PostgreSQL. Helpers live in ``server_support``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from flux.client import AsyncFluxClient
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from flux_server import ServerOptions, create_app
from flux_server.testing import serve_in_process
from server_support import BOOTSTRAP, Server

from tests.support.postgres import fresh_pg_database

# -- databases ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_pg_database("flux_test") as url:
        yield url


def empty_pg(url: str) -> None:
    """Empty every Flux table (the schema stays, so migrations are not rerun)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'flux_alembic_version'"
            )
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/flux.db"
    url: str = request.getfixturevalue("pg_database")
    empty_pg(url)
    return url


# -- servers ------------------------------------------------------------------------------------


ServerFactory = Callable[..., Awaitable[Server]]

URL = "http://flux.test"
CLIENT_HEADERS = {PROTOCOL_HEADER: PROTOCOL_VERSION, "User-Agent": "flux-client"}
"""What the client sends with every request, sent by :attr:`Server.http` too."""


@pytest.fixture
def options(db_url: str, tmp_path: Path) -> ServerOptions:
    return ServerOptions(
        database_url=db_url,
        home=tmp_path / "home",
        bootstrap_token=BOOTSTRAP,
        encryption_key="test-encryption-key-material-0123456789",
        heartbeat_timeout=30.0,
        claim_timeout=30.0,
        sync_timeout=20.0,
        sse_keepalive=5.0,
        max_request_bytes=256 * 1024,
    )


@pytest.fixture
async def start_server(options: ServerOptions) -> AsyncIterator[ServerFactory]:
    """``await start_server(**option_overrides)`` -> a running :class:`Server`."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Server:
            app = create_app(replace(options, **overrides))
            transport = await stack.enter_async_context(serve_in_process(app))
            client = await stack.enter_async_context(
                AsyncFluxClient(URL, transport=transport, timeout=30)
            )
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=URL, transport=transport, timeout=30, headers=CLIENT_HEADERS
                )
            )
            runtime = app.state.runtime
            server = Server(client, runtime.options, runtime, transport=transport, http=http)
            stack.push_async_callback(_close_workers, server)
            return server

        yield start


async def _close_workers(server: Server) -> None:
    for worker in server.workers:
        await worker.close()


@pytest.fixture
async def server(start_server: ServerFactory) -> Server:
    return await start_server()
