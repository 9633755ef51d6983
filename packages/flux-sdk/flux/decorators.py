"""The decorators under the import path the spec uses (``from flux.decorators import ...``)."""

from flux.task import TaskMetadata, task
from flux.workflow import ResourceRequest, workflow

__all__ = ["ResourceRequest", "TaskMetadata", "task", "workflow"]
