"""``list_workers``: the workers connected to the Flux server and what they can run."""

from __future__ import annotations

from flux_mcp.errors import flux_errors
from flux_mcp.results import WorkerList, WorkerSummary
from flux_mcp.tools._box import READ, Toolbox

__all__ = ["register"]


def register(box: Toolbox) -> None:
    flux = box.flux

    async def list_workers() -> WorkerList:
        """List the workers the Flux server knows: whether each is connected, its capacity,
        how many executions it runs now, and its CPUs, memory and GPUs. An execution stays
        SCHEDULED while no connected worker can run it."""
        with flux_errors():
            found = await flux.list_workers()
        return WorkerList(workers=[WorkerSummary.of(w) for w in found])

    box.add(list_workers, title="List workers", annotations=READ)
