"""Fixtures for the worker's unit tests: an in-process server (SQLite, the real client through a
streaming ASGI transport) with the ``hello`` workflow registered. Helpers live in
``worker_support``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from flux.client import AsyncFluxClient
from flux_server import ServerOptions, create_app
from flux_server.testing import serve_in_process
from worker_support import BOOTSTRAP, FLOWS, Server


@pytest.fixture
def server_options(tmp_path: Path) -> ServerOptions:
    return ServerOptions(
        database_url=f"sqlite:///{tmp_path}/db/flux.db",
        home=tmp_path / "home",
        bootstrap_token=BOOTSTRAP,
        encryption_key="test-encryption-key-material-0123456789",
        heartbeat_timeout=60.0,
        claim_timeout=60.0,
        sync_timeout=20.0,
        sse_keepalive=5.0,
        max_request_bytes=64 * 1024,
    )


@pytest.fixture
async def server(server_options: ServerOptions) -> AsyncIterator[Server]:
    app = create_app(server_options)
    async with serve_in_process(app) as transport:
        async with AsyncFluxClient("http://flux.test", transport=transport, timeout=30) as client:
            await client.register_workflows(FLOWS, filename="flows.py")
            yield Server(client, server_options)
