"""Workers connected to this server process, each with a queue of SSE frames to send."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flux.protocol import ExecutionCancelledFrame, PackageInfo, WorkerResources
from packaging.utils import canonicalize_name

from flux_server.sse import frame

__all__ = ["Connection", "WorkerHub"]


@dataclass(eq=False)
class Connection:
    name: str
    capacity: int
    resources: WorkerResources
    packages: dict[str, str] = field(default_factory=dict)
    """Installed distributions, by canonical name (``packaging.utils.canonicalize_name``)."""
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    push: bool = False
    """The worker takes pushed claims (``execution.claimed``) instead of offers."""
    sources: set[str] = field(default_factory=set)
    """Hashes of the workflow sources pushed on this stream: later claims leave them out."""

    def close(self) -> None:
        self.queue.put_nowait(None)


class WorkerHub:
    """One stream per worker name; a new connection replaces (closes) the old one."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}

    def attach(
        self,
        name: str,
        capacity: int,
        resources: WorkerResources,
        packages: list[PackageInfo] | None = None,
        push: bool = False,
    ) -> Connection:
        old = self.connections.get(name)
        if old is not None:
            old.close()
        installed = {str(canonicalize_name(p.name)): p.version for p in packages or ()}
        conn = Connection(name, capacity, resources, installed, push=push)
        self.connections[name] = conn
        return conn

    def detach(self, conn: Connection) -> bool:
        """Forget ``conn``; ``True`` when it was the worker's current connection."""
        if self.connections.get(conn.name) is conn:
            del self.connections[conn.name]
            return True
        return False

    def send(self, name: str, data: bytes) -> bool:
        conn = self.connections.get(name)
        if conn is None:
            return False
        conn.queue.put_nowait(data)
        return True

    def cancel(self, name: str, execution_id: str) -> bool:
        frame_ = ExecutionCancelledFrame(execution_id=execution_id)
        return self.send(name, frame(ExecutionCancelledFrame.EVENT, frame_))

    def update_resources(self, name: str, resources: WorkerResources) -> None:
        conn = self.connections.get(name)
        if conn is not None:
            conn.resources = resources

    def close(self, name: str) -> None:
        conn = self.connections.pop(name, None)
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()
