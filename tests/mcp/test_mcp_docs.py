"""docs/mcp.md runs: its workflow file is registered on a real server and worker, every tool
example is called in order and answers in the documented shape, and the Python client example
runs against flux-mcp started as a program."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_support import EVERY_TOOL, call, connected, mcp_program

from tests.support.cluster import FluxCluster, running_cluster

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "mcp.md"
# States an example may show exactly: the others depend on how fast a worker is.
SETTLED = {"COMPLETED", "PAUSED", "FAILED", "CANCELLED", "active", "paused"}


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def _tool_sections(text: str) -> list[tuple[str, list[tuple[dict, Any]]]]:
    """(tool, [(arguments, documented answer), ...]) for each ``### `tool``` section."""
    sections = []
    parts = re.split(r"^### `(\w+)`\n", text, flags=re.M)
    for tool, body in zip(parts[1::2], parts[2::2], strict=True):
        body = body.split("\n## ", 1)[0]
        blocks = [json.loads(b) for b in _blocks(body, "json")]
        assert blocks and len(blocks) % 2 == 0, f"{tool}: give call and answer blocks in pairs"
        sections.append((tool, list(zip(blocks[::2], blocks[1::2], strict=True))))
    return sections


def _workflows() -> str:
    (source,) = [b for b in _blocks(DOC.read_text(), "python") if "@workflow" in b]
    return source


@pytest.fixture(scope="module")
def doc_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxCluster]:
    with running_cluster(tmp_path_factory.mktemp("mcp-docs"), _workflows()) as cluster:
        yield cluster


def _same_shape(tool: str, documented: Any, actual: Any) -> None:
    if isinstance(documented, dict):
        assert isinstance(actual, dict) and set(actual) == set(documented), (tool, actual)
        state = documented.get("state")
        if state in SETTLED:
            assert actual["state"] == state, (tool, actual)
            if state == "COMPLETED" and "output" in documented:
                assert actual["output"] == documented["output"], (tool, actual)
        for key, value in documented.items():
            if isinstance(value, list | dict) and key not in ("input", "schedule", "counts"):
                _same_shape(tool, value, actual[key])
    elif isinstance(documented, list) and documented and actual:
        _same_shape(tool, documented[0], actual[0])


async def test_every_tool_example_answers_as_documented(doc_cluster: FluxCluster) -> None:
    sections = _tool_sections(DOC.read_text())
    assert {tool for tool, _ in sections} == EVERY_TOOL
    ids: dict[str, str] = {}  # an execution id in the page -> the one it stands for here
    async with connected(doc_cluster.url) as client:

        async def fresh(documented_id: str, workflow: str, mode: str, input: Any) -> None:
            started = await call(
                client, f"execute_workflow_{mode}", workflow_name=workflow, input=input
            )
            ids[documented_id] = started["execution_id"]

        for tool, examples in sections:
            for arguments, documented in examples:
                eid = arguments.get("execution_id")
                if tool == "resume_workflow_async":  # the page resumed that one already
                    await fresh(eid, "approve_payment", "sync", {"amount": 250})
                elif tool == "cancel_execution":  # started by a call the page leaves out
                    await fresh(eid, "nightly_report", "async", None)
                if eid is not None:
                    arguments = {**arguments, "execution_id": ids[eid]}
                answer = await call(client, tool, **arguments)
                _same_shape(tool, documented, answer)
                if isinstance(documented, dict) and "execution_id" in documented:
                    ids[documented["execution_id"]] = answer["execution_id"]


def test_the_python_client_example_runs(
    doc_cluster: FluxCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    (example,) = [b for b in _blocks(DOC.read_text(), "python") if "from mcp import Client" in b]
    with mcp_program(doc_cluster, "--transport", "streamable-http") as (port, _):
        code = example.replace("http://localhost:8080/mcp", f"http://127.0.0.1:{port}/mcp")
        exec(compile(code, str(DOC), "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "COMPLETED Hello, World"
    assert any(line.startswith("progress: execution ") for line in out)
    assert Client  # the example imports the SDK's client, as this test does
