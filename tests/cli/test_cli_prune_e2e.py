"""``flux execution prune`` against a real server and worker: old finished executions go, a
paused one stays; a bad age is a usage error in one line."""

from __future__ import annotations

import json

import pytest
from cli_support import Cli
from e2e_support import needs_server
from flux.client import FluxClient

from tests.support.cluster import FluxCluster

pytestmark = [pytest.mark.e2e, needs_server]


def test_prune_deletes_finished_executions_and_keeps_a_paused_one(cli: Cli, stack: FluxCluster):
    def flux(*args: str):
        return cli("--server-url", stack.url, *args)

    assert flux("workflow", "register", "workflows.py").exit_code == 0
    with FluxClient(stack.url) as client:
        done = [client.run("hello_world", n, mode="sync").execution_id for n in ("a", "b")]
        paused = client.run("approval", {"amount": 1}, mode="sync")
        assert paused.state == "PAUSED"

        kept = flux("execution", "prune", "--older-than", "30d", "--format", "json")
        assert kept.exit_code == 0, kept.output
        assert json.loads(kept.stdout) == {"deleted": 0}  # nothing that old

        pruned = flux("execution", "prune", "--older-than", "0.001s", "-w", "hello_world")
        assert pruned.exit_code == 0, pruned.output
        assert "deleted 2 finished execution(s)" in pruned.stdout
        gone = flux("execution", "show", done[0])
        assert gone.exit_code == 1 and "no execution" in gone.stderr.lower()
        assert flux("execution", "prune", "--older-than", "1s").exit_code == 0
        assert client.get_execution(paused.execution_id).state == "PAUSED"  # never a paused one

    bad = flux("execution", "prune", "--older-than", "3 fortnights")
    assert bad.exit_code == 2
    assert bad.stderr.count("\n") == 1 and "--older-than '3 fortnights'" in bad.stderr
