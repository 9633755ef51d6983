"""Every tool of flux-mcp through the SDK's in-memory client, against a real Flux server and
worker: what each answers, the progress the sync tools send, and each failure as a tool error
that says what to do next."""

from __future__ import annotations

import pytest
from mcp_support import EVERY_TOOL, READ_ONLY_TOOLS, call, connected, refused

from tests.support.cluster import FluxCluster, free_port
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.e2e


async def test_every_tool_is_offered_with_annotations_and_an_output_schema(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        tools = (await client.list_tools()).tools
    assert {t.name for t in tools} == EVERY_TOOL
    for tool in tools:
        hints = tool.annotations
        assert hints is not None, tool.name
        assert hints.read_only_hint == (tool.name in READ_ONLY_TOOLS), tool.name
        assert hints.destructive_hint is not None and hints.idempotent_hint is not None
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.description and tool.title
    destructive = {t.name for t in tools if t.annotations and t.annotations.destructive_hint}
    assert destructive == {"cancel_execution", "delete_schedule"}


async def test_read_only_offers_only_the_tools_that_change_nothing(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url, read_only=True) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == READ_ONLY_TOOLS
        message = await refused(client, "execute_workflow_async", workflow_name="hello")
        assert "execute_workflow_async" in message
        assert (await call(client, "list_workflows"))["workflows"]


async def test_upload_list_and_details(flux_cluster: FluxCluster) -> None:
    source = (
        "from flux import ExecutionContext, workflow\n\n\n"
        "@workflow\nasync def double(ctx: ExecutionContext[int]) -> int:\n"
        "    return ctx.input * 2\n"
    )
    async with connected(flux_cluster.url) as client:
        uploaded = await call(client, "upload_workflow", source=source, filename="double.py")
        assert [w["name"] for w in uploaded["registered"]] == ["double"]
        assert "execute_workflow_sync" in uploaded["next_step"]
        again = await call(client, "upload_workflow", source=source)
        assert again["registered"][0]["version"] == uploaded["registered"][0]["version"]

        listed = await call(client, "list_workflows")
        names = {w["name"] for w in listed["workflows"]}
        assert {"hello", "broken", "approval", "double"} <= names

        details = await call(client, "get_workflow_details", workflow_name="double")
        assert details["source"] == source
        assert [v["version"] for v in details["versions"]] == [details["version"]]
        done = await call(client, "execute_workflow_sync", workflow_name="double", input=21)
        assert (done["state"], done["output"]) == ("COMPLETED", 42)


async def test_execute_sync_reports_progress_and_answers_the_output(
    flux_cluster: FluxCluster,
) -> None:
    seen: list[tuple[float, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, message))

    async with connected(flux_cluster.url) as client:
        result = await client.call_tool(
            "execute_workflow_sync",
            {"workflow_name": "hello", "input": "World"},
            progress_callback=progress,
        )
    assert not result.is_error
    done = result.structured_content
    assert done is not None
    assert (done["workflow"], done["state"], done["output"]) == (
        "hello",
        "COMPLETED",
        "Hello, World",
    )
    assert done["error"] is None and done["pauses"] == []
    assert done["next_step"].startswith("Finished")
    values = [value for value, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert seen[-1][1] == f"execution {done['execution_id']} is COMPLETED"
    assert any(message and message.endswith("is RUNNING") for _, message in seen)
    # Built from the start's answer and the finishing frame, it reads as the status does
    # (updated_at aside: the finishing event's time there, the row's last write here).
    async with connected(flux_cluster.url) as client:
        status = await call(client, "get_execution_status", execution_id=done["execution_id"])
    assert _but_time(done) == _but_time(status)


def _but_time(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "updated_at"}


async def test_input_may_be_a_json_text_and_a_chosen_id_starts_once(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        first = await call(
            client,
            "execute_workflow_async",
            workflow_name="approval",
            input='{"amount": 12}',
            execution_id="mcp-chosen-1",
        )
        assert first["execution_id"] == "mcp-chosen-1"
        assert first["input"] == {"amount": 12}
        again = await call(
            client,
            "execute_workflow_async",
            workflow_name="approval",
            input={"amount": 99},
            execution_id="mcp-chosen-1",
        )
        assert again["input"] == {"amount": 12}
        await call(client, "cancel_execution", execution_id="mcp-chosen-1")


async def test_execute_async_then_status(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        started = await call(client, "execute_workflow_async", workflow_name="hello", input="you")
        assert started["state"] in ("CREATED", "SCHEDULED", "CLAIMED", "RUNNING", "COMPLETED")
        eid = started["execution_id"]

        async def finished() -> dict | None:
            status = await call(client, "get_execution_status", execution_id=eid)
            return status if status["state"] == "COMPLETED" else None

        status = await wait_until_async(finished, what="the execution to finish")
        assert status["output"] == "Hello, you"
        assert status["input"] == "you"


async def test_a_failure_is_a_result_with_its_error_and_where_to_look(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        failed = await call(client, "execute_workflow_sync", workflow_name="broken", input=7)
        assert failed["state"] == "FAILED"
        assert failed["output"] is None
        assert failed["error"]["type"] == "ValueError"
        assert "cannot handle 7" in failed["error"]["message"]
        assert "get_execution_events" in failed["next_step"]
        status = await call(client, "get_execution_status", execution_id=failed["execution_id"])
        assert _but_time(failed) == _but_time(status)
        events = await call(
            client,
            "get_execution_events",
            execution_id=failed["execution_id"],
            types=["TASK_FAILED"],
            payloads=True,
        )
        assert [e["name"] for e in events["events"]] == ["explode"]
        assert "cannot handle 7" in str(events["events"][0]["value"])


async def test_pause_then_resume_sync_follows_only_the_new_frames(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        paused = await call(
            client, "execute_workflow_sync", workflow_name="approval", input={"amount": 300}
        )
        assert paused["state"] == "PAUSED"
        (pause,) = paused["pauses"]
        assert (pause["name"], pause["data"]) == ("approve", {"amount": 300})
        assert "resume_workflow_sync" in paused["next_step"]

        seen: list[str | None] = []

        async def progress(value: float, total: float | None, message: str | None) -> None:
            seen.append(message)

        result = await client.call_tool(
            "resume_workflow_sync",
            {"execution_id": paused["execution_id"], "input": True},
            progress_callback=progress,
        )
        done = result.structured_content
        assert done is not None, result.content
        assert done["state"] == "COMPLETED"
        assert done["output"] == {"approved": True, "amount": 300}
        # The frames before the resume (RUNNING, PAUSED) are not reported again.
        assert not any(m and m.endswith("is PAUSED") for m in seen), seen
        assert seen[-1] and seen[-1].endswith("is COMPLETED")


async def test_resume_async_and_resume_errors(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        paused = await call(client, "execute_workflow_sync", workflow_name="two_approvals", input=5)
        eid = paused["execution_id"]
        assert [p["name"] for p in paused["pauses"]] == ["finance", "legal"]
        assert "pause_name" in paused["next_step"]

        message = await refused(client, "resume_workflow_async", execution_id=eid, input="x")
        assert "Pass pause_name, one of 'finance', 'legal'" in message
        message = await refused(
            client, "resume_workflow_async", execution_id=eid, input="x", pause_name="audit"
        )
        assert "no waiting pause named 'audit'" in message

        resumed = await call(
            client, "resume_workflow_async", execution_id=eid, input="ok", pause_name="legal"
        )
        assert resumed["execution_id"] == eid
        last = await call(
            client, "resume_workflow_sync", execution_id=eid, input="fine", pause_name="finance"
        )
        assert (last["state"], last["output"]) == ("COMPLETED", ["fine", "ok"])

        message = await refused(client, "resume_workflow_sync", execution_id=eid, input=1)
        assert "only a PAUSED execution can be resumed" in message
        assert "get_execution_status" in message


async def test_cancel_waits_for_the_end_and_refuses_a_finished_execution(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        started = await call(client, "execute_workflow_async", workflow_name="slow", input=60)
        eid = started["execution_id"]
        cancelled = await call(client, "cancel_execution", execution_id=eid)
        assert cancelled["state"] == "CANCELLED"
        assert "Cancelled" in cancelled["next_step"]
        message = await refused(client, "cancel_execution", execution_id=eid)
        assert "already finished" in message and "Nothing was changed" in message


async def test_the_sync_wait_ends_with_the_current_state(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url, sync_wait_seconds=0.5) as client:
        running = await call(client, "execute_workflow_sync", workflow_name="slow", input=60)
        assert running["state"] in ("SCHEDULED", "CLAIMED", "RUNNING")
        assert running["next_step"].startswith("Not finished after 0.5 s of waiting.")
        assert "get_execution_status" in running["next_step"]
        stopped = await call(
            client, "cancel_execution", execution_id=running["execution_id"], wait=False
        )
        assert stopped["state"] in ("CANCELLING", "CANCELLED")


async def test_unknown_names_and_bad_arguments_say_what_to_do(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        message = await refused(client, "execute_workflow_sync", workflow_name="nope")
        assert "No workflow named 'nope'" in message and "list_workflows" in message
        message = await refused(client, "get_workflow_details", workflow_name="nope")
        assert "upload_workflow" in message
        for tool in ("get_execution_status", "resume_workflow_sync", "cancel_execution"):
            message = await refused(client, tool, execution_id="no-such-id")
            assert "No execution 'no-such-id'" in message and "list_executions" in message, tool
        message = await refused(client, "get_execution_events", execution_id="no-such-id")
        assert "No execution 'no-such-id'" in message
        message = await refused(client, "upload_workflow", source="def (:\n")
        assert "HTTP 400" in message and "Fix the arguments" in message
        message = await refused(client, "list_executions", limit=0)
        assert "limit" in message
        message = await refused(client, "execute_workflow_async")
        assert "workflow_name" in message
        message = await refused(
            client, "execute_workflow_async", workflow_name="hello", execution_id="bad id!"
        )
        assert "execution_id" in message


async def test_an_unreachable_server_is_a_tool_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with connected(url) as client:
        for tool, arguments in (
            ("list_workflows", {}),
            ("execute_workflow_sync", {"workflow_name": "hello"}),
            ("get_execution_status", {"execution_id": "x"}),
        ):
            message = await refused(client, tool, **arguments)
            assert f"cannot reach the Flux server at {url}" in message, tool
            assert "flux start server" in message


async def test_list_executions_filters_and_pages(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        for name in ("a", "b", "c"):
            await call(client, "execute_workflow_sync", workflow_name="hello", input=name)
        first = await call(
            client, "list_executions", workflow_name="hello", state=["COMPLETED"], limit=2
        )
        assert len(first["executions"]) == 2
        assert all(e["workflow"] == "hello" for e in first["executions"])
        assert first["counts"]["COMPLETED"] >= 3
        assert first["next_cursor"]
        second = await call(
            client,
            "list_executions",
            workflow_name="hello",
            state=["COMPLETED"],
            limit=2,
            cursor=first["next_cursor"],
        )
        ids = {e["execution_id"] for e in first["executions"]}
        assert ids.isdisjoint(e["execution_id"] for e in second["executions"])
        message = await refused(client, "list_executions", state=["SLEEPY"])
        assert "state" in message


async def test_events_are_paged_and_carry_values_only_when_asked(
    flux_cluster: FluxCluster,
) -> None:
    async with connected(flux_cluster.url) as client:
        done = await call(client, "execute_workflow_sync", workflow_name="hello", input="pages")
        eid = done["execution_id"]
        first = await call(client, "get_execution_events", execution_id=eid, limit=2)
        assert [e["type"] for e in first["events"]] == ["WORKFLOW_STARTED", "TASK_STARTED"]
        assert all(e["value"] is None for e in first["events"])
        rest = await call(
            client, "get_execution_events", execution_id=eid, after=first["next_after"]
        )
        assert rest["next_after"] is None
        assert rest["events"][-1]["type"] == "WORKFLOW_COMPLETED"
        valued = await call(
            client,
            "get_execution_events",
            execution_id=eid,
            types=["TASK_COMPLETED"],
            payloads=True,
        )
        assert [e["value"] for e in valued["events"]] == ["Hello, pages"]


async def test_schedule_tools(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        created = await call(
            client,
            "create_schedule",
            workflow_name="hello",
            name="mcp_hourly",
            interval_seconds=3600,
            input="scheduled",
            description="from the MCP tests",
        )
        assert (created["workflow"], created["state"]) == ("hello", "active")
        assert created["schedule"]["interval_seconds"] == 3600
        listed = await call(client, "list_schedules", workflow_name="hello")
        assert "mcp_hourly" in {s["name"] for s in listed["schedules"]}
        paused = await call(client, "pause_schedule", schedule="mcp_hourly")
        assert paused["state"] == "paused"
        active = await call(client, "list_schedules", active_only=True)
        assert "mcp_hourly" not in {s["name"] for s in active["schedules"]}
        assert (await call(client, "resume_schedule", schedule="mcp_hourly"))["state"] == "active"
        assert (await call(client, "get_schedule_history", schedule="mcp_hourly"))["runs"] == []
        cron = await call(
            client, "create_schedule", workflow_name="hello", name="mcp_cron", cron="0 9 * * 1"
        )
        assert cron["schedule"]["cron_expression"] == "0 9 * * 1"

        message = await refused(
            client, "create_schedule", workflow_name="hello", name="mcp_hourly", cron="0 9 * * 1"
        )
        assert "Nothing was changed" in message
        message = await refused(
            client,
            "create_schedule",
            workflow_name="hello",
            name="two_kinds",
            cron="0 9 * * 1",
            interval_seconds=60,
        )
        assert "exactly one of cron, interval_seconds and run_at" in message
        message = await refused(
            client, "create_schedule", workflow_name="hello", name="bad", cron="every day"
        )
        assert "Invalid arguments" in message
        message = await refused(
            client, "create_schedule", workflow_name="nope", name="x", interval_seconds=60
        )
        assert "No workflow named 'nope'" in message

        for name in ("mcp_hourly", "mcp_cron"):
            gone = await call(client, "delete_schedule", schedule=name)
            assert gone == {"id": gone["id"], "name": name, "deleted": True}
        message = await refused(client, "pause_schedule", schedule="mcp_hourly")
        assert "No schedule 'mcp_hourly'" in message and "list_schedules" in message


async def test_list_workers(flux_cluster: FluxCluster) -> None:
    async with connected(flux_cluster.url) as client:
        workers = (await call(client, "list_workers"))["workers"]
    (worker,) = workers
    assert (worker["name"], worker["connected"]) == ("w1", True)
    assert worker["capacity"] >= 1 and worker["cpu_count"] >= 1
