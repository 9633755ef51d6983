"""``/auth/whoami`` (who the server takes the caller for) and ``/admin/keys`` (API keys)."""

from __future__ import annotations

from fastapi import APIRouter, Path
from flux.protocol import (
    ApiKeyInfo,
    ApiKeyRevoked,
    CreateApiKeyRequest,
    CreatedApiKey,
    WhoAmI,
)

from flux_server.api.deps import CallerDep, FluxRoute, RuntimeDep
from flux_server.audit import audit

__all__ = ["router"]

router = APIRouter(tags=["auth"], route_class=FluxRoute)

KEY_ID = r"^[0-9a-f]{12}$"


@router.get("/auth/whoami", response_model=WhoAmI)
async def whoami(caller: CallerDep, runtime: RuntimeDep) -> WhoAmI:
    """The caller as the server sees it: its key's name and role, a worker, or anonymous
    while authentication is off."""
    return caller.whoami(runtime.auth_required)


@router.get("/admin/keys", response_model=list[ApiKeyInfo])
async def list_keys(runtime: RuntimeDep) -> list[ApiKeyInfo]:
    """Every API key, oldest first, revoked and expired ones included (never the keys)."""
    return await runtime.keys.list()


@router.post("/admin/keys", response_model=CreatedApiKey, status_code=201)
async def create_key(
    body: CreateApiKeyRequest, caller: CallerDep, runtime: RuntimeDep
) -> CreatedApiKey:
    """Create a key. The answer is the only time the key is shown: the server keeps its
    SHA-256. 400 when ``expires_at`` is not in the future."""
    created = await runtime.keys.create(
        body.name, body.role, body.expires_at, created_by=caller.describe()
    )
    audit(caller, "key.create", created.id, name=created.name, role=created.role.value)
    return created


@router.delete("/admin/keys/{key_id}", response_model=ApiKeyRevoked)
async def revoke_key(
    caller: CallerDep,
    runtime: RuntimeDep,
    key_id: str = Path(pattern=KEY_ID, description="the key's id (`flux auth key list`)"),
) -> ApiKeyRevoked:
    """Revoke a key: refused from now on, on every replica. 404 for an unknown id."""
    await runtime.keys.revoke(key_id)
    audit(caller, "key.revoke", key_id)
    return ApiKeyRevoked(id=key_id)
