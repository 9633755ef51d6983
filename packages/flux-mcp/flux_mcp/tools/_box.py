"""What every tool module shares: the :class:`Toolbox` it registers its tools in, and the
annotations that tell a client whether a tool changes anything."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from flux.client import AsyncFluxClient
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from flux_mcp.config import McpConfig
from flux_mcp.security import may_change

__all__ = ["READ", "Toolbox", "changes"]

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
"""A tool that only reads."""


def changes(*, destructive: bool, idempotent: bool, runs_code: bool = False) -> ToolAnnotations:
    """A tool that changes something on the Flux server. ``runs_code``: it makes workers run
    workflow code, which may reach anything (an open world)."""
    return ToolAnnotations(
        read_only_hint=False,
        destructive_hint=destructive,
        idempotent_hint=idempotent,
        open_world_hint=runs_code,
    )


@dataclass(slots=True)
class Toolbox:
    """Registers tools on ``server``; with ``config.read_only`` only the read-only ones."""

    server: MCPServer
    flux: AsyncFluxClient
    config: McpConfig
    names: list[str] = field(default_factory=list)
    """The tools registered, in order."""

    def add(
        self, fn: Callable[..., Awaitable[Any]], *, title: str, annotations: ToolAnnotations
    ) -> None:
        """Offer ``fn`` as a tool named after it; its docstring is its description and its
        return annotation (a pydantic model) its output schema. A tool that changes things
        refuses a caller whose API key only reads (see :func:`flux_mcp.security.may_change`)."""
        if self.config.read_only and not annotations.read_only_hint:
            return
        if not annotations.read_only_hint:
            fn = _for_writers(fn)
        annotations = annotations.model_copy(update={"title": title})
        self.server.add_tool(fn, title=title, annotations=annotations, structured_output=True)
        self.names.append(fn.__name__)


def _for_writers(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    # functools.wraps keeps the signature, annotations and docstring the SDK reads.
    @functools.wraps(fn)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        refusal = may_change()
        if refusal is not None:
            raise ToolError(refusal)
        return await fn(*args, **kwargs)

    return guarded
