"""flux-mcp in front of a Flux server that requires API keys: its HTTP transports take a Flux
key as bearer token (checked with ``GET /auth/whoami``), a key that only reads is offered only
the tools that change nothing, flux-mcp calls the server with its own key, and it refuses to
start where tokens could not be checked or nothing would be."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import WORKFLOWS, call, connected, mcp_program, refused

from tests.support.cluster import FluxCluster, running_cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxCluster]:
    """A Flux server with authentication on (loopback, so turned on explicitly)."""
    home = tmp_path_factory.mktemp("mcp-auth")
    with running_cluster(home, WORKFLOWS, FLUX_SERVER__AUTH="on") as cluster:
        yield cluster


def _key(cluster: FluxCluster, role: str) -> str:
    with cluster.client() as flux:
        return flux.create_key(f"mcp-{role}-{uuid.uuid4().hex[:8]}", role).key


@asynccontextmanager
async def _client(port: int, token: str) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, sending ``token`` as its bearer token."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
        async with Client(transport) as client:
            yield client


async def test_bearer_tokens_are_flux_keys_and_readers_only_read(keyed: FluxCluster) -> None:
    operator, viewer = _key(keyed, "operator"), _key(keyed, "viewer")
    own = {"FLUX_MCP__AUTH": "on", "FLUX_MCP__API_KEY": _key(keyed, "operator")}
    with mcp_program(keyed, "--transport", "streamable-http", **own) as (port, _):
        url = f"http://127.0.0.1:{port}/mcp"
        headers = {"Accept": "application/json, text/event-stream"}
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        wrong = {**headers, "Authorization": "Bearer flux_not-a-key"}
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.post(url, json=ping, headers=headers)).status_code == 401
            assert (await http.post(url, json=ping, headers=wrong)).status_code == 401

        async with _client(port, operator) as client:
            done = await call(client, "execute_workflow_sync", workflow_name="hello", input="key")
            assert (done["state"], done["output"]) == ("COMPLETED", "Hello, key")

        async with _client(port, viewer) as client:
            listed = await call(client, "list_workflows")
            assert "hello" in {w["name"] for w in listed["workflows"]}
            message = await refused(client, "execute_workflow_async", workflow_name="hello")
            assert "role 'viewer', which may only read" in message
            assert "operator" in message


async def test_flux_mcp_without_a_key_of_its_own_says_so(keyed: FluxCluster) -> None:
    async with connected(keyed.url) as client:
        message = await refused(client, "list_workflows")
    assert "refused flux-mcp's credentials (HTTP 401)" in message
    assert "FLUX_MCP__API_KEY" in message
    async with connected(keyed.url, api_key=_key(keyed, "viewer")) as client:
        assert (await call(client, "list_workflows"))["workflows"]
        message = await refused(client, "execute_workflow_async", workflow_name="hello")
    assert "HTTP 403" in message


def _start(cluster: FluxCluster, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flux_cli", "--server-url", cluster.url, "start", "mcp"]
    return subprocess.run(
        [*argv, *args, "--port", "9"],
        cwd=cluster.home,
        env={**cluster.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_refused_starts(keyed: FluxCluster, flux_cluster: FluxCluster) -> None:
    # Tokens, but a Flux server that checks no keys: any token would pass.
    done = _start(flux_cluster, FLUX_MCP__AUTH="on")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert "does not check API keys" in line
    # Beyond loopback with authentication off: only with --insecure.
    done = _start(keyed, "--host", "0.0.0.0", FLUX_MCP__AUTH="off")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "without authentication" in line and "--insecure" in line
