"""``flux start mcp`` on each transport for real, driven by the SDK's own client: the tools
are listed, a workflow runs to completion with progress, a paused one is resumed. Requests
with a foreign ``Host`` or ``Origin`` are refused; ``--read-only`` hides the mutating tools."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp_support import EVERY_TOOL, READ_ONLY_TOOLS, call, mcp_program

from tests.support.cluster import FluxCluster

pytestmark = pytest.mark.e2e


async def _drive(client: Client) -> None:
    """What every transport must carry: listing, a run with progress, a resume."""
    assert {t.name for t in (await client.list_tools()).tools} == EVERY_TOOL
    seen: list[str | None] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    result = await client.call_tool(
        "execute_workflow_sync",
        {"workflow_name": "hello", "input": "transport"},
        progress_callback=progress,
    )
    done = result.structured_content
    assert done is not None, result.content
    assert (done["state"], done["output"]) == ("COMPLETED", "Hello, transport")
    assert seen and seen[-1] == f"execution {done['execution_id']} is COMPLETED"

    paused = await call(
        client, "execute_workflow_sync", workflow_name="approval", input={"amount": 1}
    )
    assert paused["state"] == "PAUSED"
    resumed = await call(
        client, "resume_workflow_sync", execution_id=paused["execution_id"], input="yes"
    )
    assert (resumed["state"], resumed["output"]) == ("COMPLETED", {"approved": "yes", "amount": 1})


async def test_streamable_http(flux_cluster: FluxCluster) -> None:
    with mcp_program(flux_cluster, "--transport", "streamable-http") as (port, _):
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            await _drive(client)


async def test_sse(flux_cluster: FluxCluster) -> None:
    with mcp_program(flux_cluster, "--transport", "sse") as (port, _):
        async with Client(sse_client(f"http://127.0.0.1:{port}/sse")) as client:
            await _drive(client)


async def test_stdio(flux_cluster: FluxCluster) -> None:
    command = ["-m", "flux_cli", "--server-url", flux_cluster.url, "start", "mcp"]
    params = StdioServerParameters(
        command=sys.executable,
        args=[*command, "--transport", "stdio"],
        env=flux_cluster.env,
        cwd=str(flux_cluster.home),
    )
    async with Client(params) as client:
        await _drive(client)


def test_a_foreign_host_or_origin_is_refused(flux_cluster: FluxCluster) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    with mcp_program(flux_cluster, "--transport", "streamable-http") as (port, _):
        url = f"http://127.0.0.1:{port}/mcp"
        with httpx.Client(timeout=10) as http:
            rebound = http.post(url, json=initialize, headers={**headers, "Host": "evil.example"})
            assert rebound.status_code == 421
            foreign = http.post(
                url, json=initialize, headers={**headers, "Origin": "http://evil.example"}
            )
            assert foreign.status_code == 403
            local = http.post(
                url, json=initialize, headers={**headers, "Origin": f"http://localhost:{port}"}
            )
            assert local.status_code == 200, local.text
    with mcp_program(flux_cluster, "--transport", "sse", "--allowed-host", "mcp.test") as (
        port,
        _,
    ):
        url = f"http://127.0.0.1:{port}/sse"
        # One connection each: the SSE transport closes the connection it refuses.
        assert httpx.get(url, headers={"Host": "evil.example"}, timeout=10).status_code == 421
        with httpx.stream("GET", url, headers={"Host": "mcp.test"}, timeout=10) as allowed:
            assert allowed.status_code == 200


async def test_read_only_hides_the_mutating_tools(flux_cluster: FluxCluster) -> None:
    with mcp_program(flux_cluster, "--transport", "streamable-http", "--read-only") as (port, _):
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            assert {t.name for t in (await client.list_tools()).tools} == READ_ONLY_TOOLS
            listed = await call(client, "list_workflows")
            assert "hello" in {w["name"] for w in listed["workflows"]}


def test_a_bind_beyond_loopback_in_front_of_a_server_without_keys_is_refused(
    flux_cluster: FluxCluster,
) -> None:
    """Beyond loopback flux-mcp requires bearer tokens (mcp.auth auto), which it checks with
    the Flux server's keys: a server that checks none cannot vouch for them."""
    argv = [sys.executable, "-m", "flux_cli", "--server-url", flux_cluster.url, "start", "mcp"]
    done = subprocess.run(
        [*argv, "--host", "0.0.0.0", "--port", "9"],
        cwd=flux_cluster.home,
        env=flux_cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("flux-mcp: the Flux server at http://127.0.0.1:")
    assert "does not check API keys" in line
