"""Subprocess isolation: one execution per child process (``isolation = "subprocess"``).

The worker spawns ``python -m flux_worker.child`` and speaks JSON lines with it:

- worker -> child: the claim (first line), ``{"type": "flushed", "id"}`` once the events sent
  before a flush are acknowledged by the server, ``{"type": "secrets", "id", "secrets"|"error"}``,
  ``{"type": "cancel"}``.
- child -> worker: ``{"type": "events", "events", "output"}``, ``{"type": "flush", "id"}``,
  ``{"type": "get_secrets", "id", "names"}``, ``{"type": "done"}``.

The child replays and runs the workflow exactly as the in-process worker does; the worker
keeps the session, the outbox and the server connection, so a crash of the child (a segfault
in a native library, memory exhaustion) costs only that execution's current attempt.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from flux.context import ExecutionContext
from flux.domain import ExecutionEvent
from flux.errors import NonDeterminismError, SecretNotFoundError
from flux.protocol.claims import ClaimResponse
from flux.protocol.events import EventRecord
from flux.runner import WorkflowRun
from flux.store import LocalStore

__all__ = ["main"]


class _Pipe:
    """The child's side: writes lines to stdout, dispatches replies read from stdin."""

    def __init__(self, reader: asyncio.StreamReader, out: Any) -> None:
        self.reader = reader
        self.out = out
        self.waiters: dict[int, asyncio.Future[Any]] = {}
        self.counter = 0
        self.on_cancel: Any = None

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    async def request(self, message: dict[str, Any]) -> Any:
        self.counter += 1
        message["id"] = self.counter
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiters[self.counter] = future
        self.send(message)
        return await future

    async def listen(self) -> None:
        while line := await self.reader.readline():
            message = json.loads(line)
            if message["type"] == "cancel":
                if self.on_cancel is not None:
                    self.on_cancel()
                continue
            future = self.waiters.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self.waiters.values():  # the worker went away
            if not future.done():
                future.set_exception(ConnectionError("the worker closed the pipe"))


class _PipeCheckpointer:
    def __init__(self, pipe: _Pipe, serializer: str) -> None:
        self.pipe = pipe
        self.serializer = serializer

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        records = [
            EventRecord.from_event(e, self.serializer).model_dump(mode="json") for e in events
        ]
        self.pipe.send({"type": "events", "events": records})

    async def flush(self) -> None:
        await self.pipe.request({"type": "flush"})

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        await self.flush()


class _ChildServices:
    def __init__(self, pipe: _Pipe, home: str, serializer: str, server_url: str) -> None:
        self.pipe = pipe
        self.home = home
        self.serializer = serializer
        self.server_url = server_url

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        reply = await self.pipe.request({"type": "get_secrets", "names": names})
        if "error" in reply:
            raise SecretNotFoundError(reply["error"])
        return dict(reply["secrets"])

    def _store(self) -> LocalStore:
        from flux_worker.worker import worker_cache

        return worker_cache(self.home, self.serializer)

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return self._store().cache_get(key)

    def cache_put(self, key: str, value: Any) -> None:
        self._store().cache_put(key, value)

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        from flux.client import AsyncFluxClient

        from flux_worker.worker import subworkflow_outcome

        name = target if isinstance(target, str) else target.name
        async with AsyncFluxClient(self.server_url) as client:
            status = await client.run(name, input, mode="sync", execution_id=execution_id)
            return subworkflow_outcome(name, status)


async def _main(protocol: Any) -> int:
    from flux_worker.modules import ModuleCache
    from flux_worker.worker import context_from_claim, failed_context

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    header = json.loads(await reader.readline())
    claim = ClaimResponse.model_validate(header["claim"])
    serializer = header.get("serializer", "pkl")
    pipe = _Pipe(reader, protocol)
    listener = loop.create_task(pipe.listen())
    checkpointer = _PipeCheckpointer(pipe, serializer)
    try:
        wf = ModuleCache().load(
            claim.workflow_name, claim.workflow_version, claim.source_hash, claim.source
        )
        ctx = context_from_claim(claim)
    except Exception as exc:  # the source does not load, the history does not read back
        print(f"execution {claim.execution_id} cannot run: {exc}", file=sys.stderr)
        failed = failed_context(claim, exc)
        checkpointer.save(failed, failed.events)
        await checkpointer.finish(failed)
        pipe.send({"type": "done"})
        listener.cancel()
        return 0
    services = _ChildServices(pipe, header["home"], serializer, header["server_url"])
    wf_run = WorkflowRun(wf, ctx, checkpointer, services)
    pipe.on_cancel = wf_run.cancel
    code = 0
    try:
        await wf_run.execute()
    except NonDeterminismError as exc:
        pipe.send({"type": "nondeterminism", "message": str(exc)})
        code = 3
    pipe.send({"type": "done"})
    listener.cancel()
    return code


def main() -> None:
    # The protocol gets its own copy of stdout; fd 1 then points at stderr, so whatever the
    # workflow prints cannot corrupt the JSON lines.
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    raise SystemExit(asyncio.run(_main(protocol)))


if __name__ == "__main__":
    main()
