"""``/admin/secrets``: the secrets workflows use, encrypted at rest.

Listings carry names only; a value leaves the server only through ``GET /admin/secrets/{name}``
and to a worker running an execution that asked for it. Values never appear in logs or errors.
"""

from __future__ import annotations

from fastapi import APIRouter
from flux.errors import SecretNotFoundError
from flux.protocol import SecretDeleted, SecretInfo, SecretValue, SetSecretRequest
from flux.secrets import validate_secret_name

from flux_server.api.deps import CallerDep, FluxRoute, RuntimeDep
from flux_server.audit import audit

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"], route_class=FluxRoute)


@router.get("/secrets", response_model=list[SecretInfo])
async def list_secrets(runtime: RuntimeDep) -> list[SecretInfo]:
    """Every secret's name (never its value), sorted."""
    return [SecretInfo(name=name, updated_at=at) for name, at in await runtime.secrets.list()]


@router.get("/secrets/{name}", response_model=SecretValue)
async def get_secret(name: str, caller: CallerDep, runtime: RuntimeDep) -> SecretValue:
    """A secret's value. 404 when it does not exist; 500 when the server's encryption key is
    not the one it was stored with."""
    value = await runtime.secrets.get(name)
    audit(caller, "secret.read", name)
    return SecretValue(name=name, value=value)


@router.post("/secrets", response_model=SecretInfo)
async def set_secret(body: SetSecretRequest, caller: CallerDep, runtime: RuntimeDep) -> SecretInfo:
    """Create a secret or replace its value (any JSON value). 400 for an invalid name."""
    updated_at = await runtime.secrets.set(body.name, body.value)
    audit(caller, "secret.set", body.name)
    return SecretInfo(name=body.name, updated_at=updated_at)


@router.delete("/secrets/{name}", response_model=SecretDeleted)
async def delete_secret(name: str, caller: CallerDep, runtime: RuntimeDep) -> SecretDeleted:
    """Delete a secret. 404 when it does not exist."""
    if not await runtime.secrets.remove(validate_secret_name(name)):
        raise SecretNotFoundError(
            f"secret not found: {name!r}; list them with `flux secrets list`", missing=[name]
        )
    audit(caller, "secret.delete", name)
    return SecretDeleted(name=name)
