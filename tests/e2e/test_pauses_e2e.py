"""Pauses answered one by one, with real server and worker processes and the real `flux` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import FluxCluster, running_cluster

pytestmark = pytest.mark.e2e

WORKFLOWS = """
from flux import ExecutionContext, task, workflow
from flux.tasks import parallel, pause


@task
async def decide(who: str, answer: dict) -> str:
    return f"{who}: {answer['decision']}"


async def approval(who: str, amount: int) -> str:
    answer = await pause(who, data={"amount": amount, "ask": f"may {who} sign?"})
    return await decide(who, answer)


@workflow
async def two_approvals(ctx: ExecutionContext[int]):
    return await parallel(approval("finance", ctx.input), approval("legal", ctx.input))
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FluxCluster]:
    with running_cluster(tmp_path, WORKFLOWS) as running:
        yield running


def flux(c: FluxCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flux_cli", "--server-url", c.url, *args],
        env=c.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_two_waiting_pauses_answered_by_name_through_the_cli(cluster) -> None:
    started = flux(cluster, "workflow", "run", "two_approvals", "500", "--mode", "sync")
    assert started.returncode == 0, started.stderr
    assert "paused at finance, legal" in started.stdout
    assert "--pause NAME" in started.stdout
    shown = flux(cluster, "workflow", "run", "two_approvals", "7", "--mode", "sync", "-f", "json")
    status = json.loads(shown.stdout)
    execution_id = status["execution_id"]
    assert status["state"] == "PAUSED"
    assert [(p["name"], p["data"]["amount"]) for p in status["pauses"]] == [
        ("finance", 7),
        ("legal", 7),
    ]

    table = flux(cluster, "workflow", "status", "two_approvals", execution_id)
    assert "Waiting pauses" in table.stdout and "legal" in table.stdout

    refused = flux(cluster, "workflow", "resume", "two_approvals", execution_id, '"x"')
    assert refused.returncode != 0
    assert "waits at 2 pauses (finance, legal)" in refused.stderr
    assert "Traceback" not in refused.stderr

    legal = flux(
        cluster, "workflow", "resume", "two_approvals", execution_id,
        '{"decision": "yes"}', "--pause", "legal", "--mode", "sync", "-f", "json",
    )  # fmt: skip
    assert legal.returncode == 0, legal.stderr
    after_legal = json.loads(legal.stdout)
    assert after_legal["state"] == "PAUSED"
    assert [p["name"] for p in after_legal["pauses"]] == ["finance"]

    finance = flux(
        cluster, "workflow", "resume", "two_approvals", execution_id,
        '{"decision": "no"}', "--mode", "sync", "-f", "json",
    )  # fmt: skip
    assert finance.returncode == 0, finance.stderr
    done = json.loads(finance.stdout)
    assert done["state"] == "COMPLETED"
    assert done["output"] == ["finance: no", "legal: yes"]
    assert done["pauses"] == []
