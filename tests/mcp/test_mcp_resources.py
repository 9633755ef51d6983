"""flux-mcp's resources and its prompt, through the SDK's in-memory client against a real Flux
server and worker."""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import TextContent, TextResourceContents
from mcp_support import WORKFLOWS, call, connected

from tests.support.cluster import FluxCluster

pytestmark = pytest.mark.e2e


async def test_resources_show_an_execution_its_events_and_a_workflow_source(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {
            "flux://executions/{execution_id}",
            "flux://executions/{execution_id}/events",
            "flux://workflows/{workflow_name}/source",
        }
        done = await call(client, "execute_workflow_sync", workflow_name="hello", input="res")
        eid = done["execution_id"]

        (content,) = (await client.read_resource(f"flux://executions/{eid}")).contents
        assert isinstance(content, TextResourceContents)
        assert content.mime_type == "application/json"
        shown = json.loads(content.text)
        assert (shown["state"], shown["output"]) == ("COMPLETED", "Hello, res")

        (content,) = (await client.read_resource(f"flux://executions/{eid}/events")).contents
        assert isinstance(content, TextResourceContents)
        events = json.loads(content.text)["events"]
        assert events[0]["type"] == "WORKFLOW_STARTED"
        assert events[-1]["type"] == "WORKFLOW_COMPLETED"
        assert all("value" not in e for e in events)

        (content,) = (await client.read_resource("flux://workflows/hello/source")).contents
        assert isinstance(content, TextResourceContents)
        assert content.mime_type == "text/x-python"
        assert content.text == WORKFLOWS


async def test_an_unknown_resource_says_what_is_missing(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        with pytest.raises(MCPError, match="No execution 'nope'"):
            await client.read_resource("flux://executions/nope")
        with pytest.raises(MCPError, match="No workflow named 'nope'"):
            await client.read_resource("flux://workflows/nope/source")


async def test_the_debug_prompt_carries_the_error_the_failing_events_and_the_source(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        (prompt,) = (await client.list_prompts()).prompts
        assert prompt.name == "debug_failed_execution"
        assert [a.name for a in prompt.arguments or []] == ["execution_id"]
        failed = await call(client, "execute_workflow_sync", workflow_name="broken", input=3)
        got = await client.get_prompt(
            "debug_failed_execution", {"execution_id": failed["execution_id"]}
        )
        (message,) = got.messages
        assert message.role == "user" and isinstance(message.content, TextContent)
        text = message.content.text
        assert "is FAILED: ValueError: cannot handle 3" in text
        assert "TASK_FAILED explode" in text
        assert "async def broken(ctx: ExecutionContext) -> None:" in text
        assert "Do not upload or run anything until the user agrees" in text

        with pytest.raises(MCPError, match="No execution 'nope'"):
            await client.get_prompt("debug_failed_execution", {"execution_id": "nope"})
