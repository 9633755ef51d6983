"""Which connected worker a queued execution goes to: pure functions, no database.

A dispatch round reads what each worker holds or was offered (its load), then places queued
executions one at a time in queue order: each to the least-loaded worker that has a free slot
and whose resources fit the execution's requests. GPUs are counted as well: an execution
that requests GPUs holds them while offered or held, so two ``gpu=1`` runs never share a
one-GPU worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flux.protocol import ResourceRequest

__all__ = ["OfferTarget", "Placement", "gpus_needed"]


@dataclass(frozen=True, slots=True)
class OfferTarget:
    """A worker connected to this server that may receive offers."""

    name: str
    capacity: int
    fits: Any
    """``fits(requests: dict | None) -> bool``."""
    gpus: int = 0
    """GPUs the worker reported: executions requesting GPUs hold them while offered or held,
    so two ``gpu=1`` runs never share a one-GPU worker."""
    push: bool = False
    """Claim for the worker at once instead of offering (its stream takes pushed claims)."""
    known: frozenset[str] = frozenset()
    """Source hashes already pushed to it: those claims come without the source."""


def gpus_needed(requests: Mapping[str, Any] | None) -> int:
    """The GPUs an execution with stored ``requests`` holds."""
    # Stored requests were validated when the workflow was registered: no validation here.
    return ResourceRequest.model_construct(**requests).gpu_count() if requests else 0


GpuUsers = Callable[[], Iterable[tuple[str, Mapping[str, Any] | None]]]
"""Reads, when first needed, the (worker, requests) of every execution that holds GPUs of the
workers: held by it, or recently offered to it."""


class Placement:
    """The free slots (and GPUs) of ``targets`` in one dispatch round, as executions are
    placed on them.

    Args:
        targets: the workers that may receive offers.
        load: executions each worker holds or was recently offered (absent: none).
        gpu_users: read once, on the first execution that requests GPUs and fits a worker.
    """

    def __init__(
        self, targets: Sequence[OfferTarget], load: Mapping[str, int], gpu_users: GpuUsers
    ) -> None:
        self.targets = targets
        self.capacity = {t.name: t.capacity for t in targets}
        self.free = {t.name: t.capacity - load.get(t.name, 0) for t in targets}
        self.gpus_free: dict[str, int] | None = None
        self._gpu_users = gpu_users

    def has_room(self) -> bool:
        """Whether any worker has a free slot."""
        return any(n > 0 for n in self.free.values())

    def place(self, requests: Mapping[str, Any] | None, lapsed: str | None = None) -> str | None:
        """The worker an execution requesting ``requests`` goes to, its slot (and GPUs) now
        taken; ``None`` when none fits now.

        Least loaded (the share of its capacity in use) first; on a tie, not ``lapsed``, the
        worker that let an earlier offer of this execution lapse.
        """
        free = self.free
        fitting = [t.name for t in self.targets if free[t.name] > 0 and t.fits(requests)]
        need = gpus_needed(requests)
        if need and fitting:
            gpus_free = self._gpus()
            fitting = [n for n in fitting if gpus_free[n] >= need]
        if not fitting:
            return None
        capacity = self.capacity
        name = min(fitting, key=lambda n: ((capacity[n] - free[n]) / capacity[n], n == lapsed))
        free[name] -= 1
        if need and self.gpus_free is not None:
            self.gpus_free[name] -= need
        return name

    def _gpus(self) -> dict[str, int]:
        if self.gpus_free is None:
            free = {t.name: t.gpus for t in self.targets}
            for worker, requests in self._gpu_users():
                if worker in free:
                    free[worker] -= gpus_needed(requests)
            self.gpus_free = free
        return self.gpus_free
