"""``/memory``: long-term memory (protocol 1.11), JSON values by scope and key that every worker
sees (:mod:`flux.memory`)."""

from __future__ import annotations

from fastapi import APIRouter
from flux.protocol import MemoryDeleted, MemoryEntry, MemoryItems, MemoryValue
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep, model_response

__all__ = ["router"]

router = APIRouter(prefix="/memory", tags=["memory"], route_class=FluxRoute)


@router.get("/{scope}", response_model=MemoryItems)
async def memory_items(scope: str, runtime: RuntimeDep) -> Response:
    """Every key of ``scope`` with its value, by key."""
    return model_response(await runtime.memory.items(scope))


@router.get("/{scope}/{key}", response_model=MemoryEntry)
async def memory_get(scope: str, key: str, runtime: RuntimeDep) -> Response:
    """The value under ``scope``/``key`` (404 when there is none)."""
    return model_response(await runtime.memory.get(scope, key))


@router.put("/{scope}/{key}", response_model=MemoryEntry)
async def memory_put(scope: str, key: str, body: MemoryValue, runtime: RuntimeDep) -> Response:
    """Create or replace the value (413 when over 64 KiB as JSON)."""
    return model_response(await runtime.memory.put(scope, key, body.value))


@router.delete("/{scope}/{key}", response_model=MemoryDeleted)
async def memory_delete(scope: str, key: str, runtime: RuntimeDep) -> Response:
    """Forget the value; ``deleted`` says whether there was one."""
    return model_response(MemoryDeleted(deleted=await runtime.memory.delete(scope, key)))
