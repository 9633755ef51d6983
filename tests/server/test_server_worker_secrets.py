"""The worker side of the protocol: secrets, given only for the executions a worker holds,
and stored encrypted."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flux.errors import ApiError, NotFoundError


async def test_secrets_only_for_held_executions(server) -> None:
    await server.runtime.secrets.set("API_KEY", "s3cr3t")
    await server.runtime.secrets.set("LIMITS", {"rps": 5})
    await server.register(
        b"from flux import workflow\n\n"
        b'@workflow.with_options(secret_requests=["API_KEY", "LIMITS", "MISSING"])\n'
        b"async def hello(ctx):\n    return 1\n"
    )
    w1 = await server.worker("w1")
    w2 = await server.worker("w2", connect=False)
    run = await server.client.run("hello")
    await w1.take()
    assert await w1.ch.get_secrets(run.execution_id, ["API_KEY", "LIMITS"]) == {
        "API_KEY": "s3cr3t",
        "LIMITS": {"rps": 5},
    }
    with pytest.raises(ApiError) as info:
        await w2.ch.get_secrets(run.execution_id, ["API_KEY"])
    assert info.value.status_code == 403
    with pytest.raises(NotFoundError, match="MISSING") as missing:
        await w1.ch.get_secrets(run.execution_id, ["API_KEY", "MISSING"])
    assert missing.value.details["error_details"]["missing"] == ["MISSING"]


async def test_secrets_are_stored_encrypted(server) -> None:
    await server.runtime.secrets.set("API_KEY", "plain-text-value")
    async with server.runtime.db.read() as conn:
        (blob,) = (await conn.execute(sa.text("SELECT value FROM secrets"))).one()
    assert b"plain-text-value" not in bytes(blob)
    assert await server.runtime.secrets.names() == ["API_KEY"]
