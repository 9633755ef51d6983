"""Secrets with real processes: a task's ``secret_requests`` resolved on a real worker from the
server's store, and the value nowhere else (events, listings, logs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.domain import ExecutionState

from tests.support.cluster import FluxCluster

pytestmark = pytest.mark.e2e

VALUE = "sk-live-0123456789-do-not-leak"

WORKFLOWS = """
import hashlib
from typing import Any

from flux import ExecutionContext, task, workflow


@task.with_options(secret_requests=["API_KEY", "LIMITS"])
async def fingerprint(label: str, secrets: dict[str, Any] = {}) -> dict:
    digest = hashlib.sha256(secrets["API_KEY"].encode()).hexdigest()
    return {"label": label, "sha256": digest, "rps": secrets["LIMITS"]["rps"]}


@workflow
async def uses_secret(ctx: ExecutionContext[str]) -> dict:
    return await fingerprint(ctx.input)


@task.with_options(secret_requests=["NOT_SET"])
async def needs_missing(secrets: dict[str, Any] = {}) -> str:
    return "unreachable"


@workflow
async def missing_secret(ctx: ExecutionContext[None]) -> str:
    return await needs_missing()
"""


def test_secret_requests_resolve_on_a_real_worker(cluster: FluxCluster, tmp_path: Path) -> None:
    cluster.start_worker("w1")
    source = tmp_path / "secret_flows.py"
    source.write_text(WORKFLOWS)
    try:
        with FluxClient(cluster.url) as client:
            client.register_workflows(source)
            client.set_secret("API_KEY", VALUE)
            client.set_secret("LIMITS", {"rps": 5})

            done = client.run("uses_secret", "demo", mode="sync")
            assert done.state == ExecutionState.COMPLETED, done
            assert done.output == {
                "label": "demo",
                "sha256": hashlib.sha256(VALUE.encode()).hexdigest(),
                "rps": 5,
            }

            detailed = client.status("uses_secret", done.execution_id, detailed=True)
            assert detailed.events
            assert VALUE not in detailed.model_dump_json()
            assert VALUE not in json.dumps(
                [s.model_dump(mode="json") for s in client.list_secrets()]
            )

            missing = client.run("missing_secret", None, mode="sync")
            assert missing.state == ExecutionState.FAILED
            assert "NOT_SET" in json.dumps(missing.output)
        for log in cluster.logs:
            assert VALUE not in log.read_text(errors="replace"), log.name
        # The database files (and the SQLite write-ahead log) hold no plaintext either.
        for db_file in cluster.home.glob("flux.db*"):
            assert VALUE.encode() not in db_file.read_bytes(), db_file.name
    except BaseException:
        print(cluster.tail())
        raise
