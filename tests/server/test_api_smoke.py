from flux.domain import ExecutionState


async def test_run_async_to_completion(server) -> None:
    await server.register()
    worker = await server.worker()
    status = await server.client.run("hello", "World")
    assert status.state == ExecutionState.SCHEDULED
    claim = await worker.take()
    assert claim.execution_id == status.execution_id
    await worker.finish(claim, "Hello, World")
    final = await server.client.status("hello", status.execution_id, detailed=True)
    assert final.state == ExecutionState.COMPLETED
    assert final.output == "Hello, World"
    assert [e.type for e in final.events] == ["WORKFLOW_STARTED", "WORKFLOW_COMPLETED"]
