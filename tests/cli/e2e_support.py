"""What the CLI tests that run real processes share: the ``flux`` script, the workflows they
register and the worker the ``stack`` fixture starts. Processes, clusters and waiting come from
:mod:`tests.support`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

STACK_WORKER = "cli-e2e"
"""The worker the ``stack`` fixture starts."""

FLUX = str(Path(sys.executable).with_name("flux"))
"""The installed console script."""

needs_server = pytest.mark.skipif(
    importlib.util.find_spec("flux_server") is None,
    reason="flux-server is not installed (import flux_server fails)",
)

WORKFLOWS = """\
from flux import ExecutionContext, task, workflow
from flux.tasks import pause, sleep


@task
async def say_hello(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def hello_world(ctx: ExecutionContext[str]) -> str:
    return await say_hello(ctx.input)


@workflow
async def approval(ctx: ExecutionContext[dict]) -> dict:
    decision = await pause("approve")
    return {"request": ctx.input, "decision": decision}


@workflow
async def countdown(ctx: ExecutionContext[float]) -> str:
    await sleep(ctx.input)
    return "done"


@workflow
async def broken(ctx: ExecutionContext[None]) -> None:
    raise ValueError("this workflow always fails")
"""
