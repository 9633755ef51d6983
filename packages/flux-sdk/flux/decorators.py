"""The decorators under the import path the spec uses (``from flux.decorators import ...``)."""

from typing import TYPE_CHECKING, Any

from flux.task import TaskMetadata, task
from flux.workflow import workflow

if TYPE_CHECKING:
    from flux.protocol.workflows import ResourceRequest

__all__ = ["ResourceRequest", "TaskMetadata", "task", "workflow"]


def __getattr__(name: str) -> Any:
    if name == "ResourceRequest":  # the protocol's models load on first use
        from flux.protocol.workflows import ResourceRequest

        return ResourceRequest
    raise AttributeError(f"module 'flux.decorators' has no attribute {name!r}")
