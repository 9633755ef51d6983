"""What the flux-mcp tests share: the workflows they run, an in-memory MCP client for a
flux-mcp built around a real Flux server, and flux-mcp itself started as a program."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from flux.client import AsyncFluxClient
from flux.config import MCPSettings
from flux_mcp import McpConfig, build_server
from mcp import Client
from mcp.types import CallToolResult

from tests.support.cluster import FluxCluster, free_port, spawn, stop_process
from tests.support.waiting import wait_until

WORKFLOWS = """
from flux import ExecutionContext, task, workflow
from flux.tasks import parallel, pause, sleep


@task
async def greet(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def hello(ctx: ExecutionContext[str]) -> str:
    return await greet(ctx.input)


@task
async def explode(value) -> None:
    raise ValueError(f"cannot handle {value!r}")


@workflow
async def broken(ctx: ExecutionContext) -> None:
    await explode(ctx.input)


@workflow
async def approval(ctx: ExecutionContext[dict]) -> dict:
    answer = await pause("approve", data={"amount": ctx.input["amount"]})
    return {"approved": answer, "amount": ctx.input["amount"]}


@workflow
async def two_approvals(ctx: ExecutionContext[int]) -> list:
    return await parallel(pause("finance", data=ctx.input), pause("legal", data=ctx.input))


@workflow
async def slow(ctx: ExecutionContext[float]) -> str:
    await sleep(ctx.input or 60)
    return "woke"
"""

EVERY_TOOL = {
    "list_workflows",
    "get_workflow_details",
    "upload_workflow",
    "execute_workflow_sync",
    "execute_workflow_async",
    "get_execution_status",
    "cancel_execution",
    "resume_workflow_sync",
    "resume_workflow_async",
    "list_executions",
    "get_execution_events",
    "list_schedules",
    "create_schedule",
    "pause_schedule",
    "resume_schedule",
    "delete_schedule",
    "get_schedule_history",
    "list_workers",
}
READ_ONLY_TOOLS = {
    "list_workflows",
    "get_workflow_details",
    "get_execution_status",
    "list_executions",
    "get_execution_events",
    "list_schedules",
    "get_schedule_history",
    "list_workers",
}


def config_for(url: str, **values: Any) -> McpConfig:
    """flux-mcp's defaults (whatever this process's configuration says) for the server at
    ``url``, with ``values`` over them."""
    return McpConfig.from_settings(MCPSettings(), server_url=url, **values)


@asynccontextmanager
async def connected(url: str, **values: Any) -> AsyncIterator[Client]:
    """The SDK's in-memory client, connected to a flux-mcp for the Flux server at ``url``
    (calling it with ``values["api_key"]``, if given)."""
    async with AsyncFluxClient(url, api_key=values.get("api_key")) as flux:
        server = build_server(config_for(url, **values), flux)
        async with Client(server) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured answer of a tool call that must succeed."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    return result.structured_content


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    """The message of a tool call that must fail as a tool error."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    text = _text(result)
    assert "Traceback" not in text
    return text


def _text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def mcp_program(
    cluster: FluxCluster, *args: str, port: int | None = None, **env: str
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``flux start mcp ARGS --server-url <cluster>`` as a program (``env`` adds variables);
    for an HTTP transport (``--port`` is added) it is awaited until its port accepts
    connections."""
    port = port or free_port()
    argv = [sys.executable, "-m", "flux_cli", "--server-url", cluster.url, "start", "mcp"]
    argv += [*args, "--port", str(port)]
    log = cluster.home / f"mcp-{port}.log"
    process = spawn(argv, cwd=cluster.home, env={**cluster.env, **env}, log=log)
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            return _port_open(port)

        wait_until(ready, what=f"flux-mcp on port {port}")
        yield port, process
    finally:
        stop_process(process, grace=10)
