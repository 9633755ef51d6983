"""Long-term memory on the server (``/memory``, protocol 1.11): JSON values by scope and key for
every worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from flux.client import _calls as calls
from flux.errors import ApiError, NotFoundError
from server_support import JSON, Server


async def test_put_get_list_delete(server: Server) -> None:
    send = server.client.send
    first = await send(calls.memory_put("user:42", "language", '"Portuguese"'))
    assert (first.scope, first.key, first.value) == ("user:42", "language", "Portuguese")
    await send(calls.memory_put("user:42", "pets", '{"cats":2}'))
    await send(calls.memory_put("user:42", "language", '"Galician"'))  # replaces
    await send(calls.memory_put("user:7", "language", '"Basque"'))

    entry = await send(calls.memory_get("user:42", "language"))
    assert entry.value == "Galician" and entry.updated_at.tzinfo is not None
    listing = await send(calls.memory_items("user:42"))
    assert [(e.key, e.value) for e in listing.items] == [
        ("language", "Galician"),
        ("pets", {"cats": 2}),
    ]
    assert (await send(calls.memory_delete("user:42", "pets"))).deleted is True
    assert (await send(calls.memory_delete("user:42", "pets"))).deleted is False
    with pytest.raises(NotFoundError, match="memory 'user:42' has no key 'pets'"):
        await send(calls.memory_get("user:42", "pets"))
    assert (await send(calls.memory_items("nobody"))).items == []


async def test_odd_names_travel_and_limits_hold(server: Server) -> None:
    send = server.client.send
    odd = "a b?c#d%é:"
    await send(calls.memory_put(odd, odd, "[1,2]"))
    assert (await send(calls.memory_get(odd, odd))).value == [1, 2]
    with pytest.raises(ApiError) as large:
        await send(calls.memory_put("s", "k", '"' + "x" * 70_000 + '"'))
    assert large.value.status_code == 413
    with pytest.raises(ApiError, match="at most 256 characters") as long:
        await send(calls.memory_get("s", "k" * 300))
    assert long.value.status_code == 400
    answer = await server.http.put("/memory/s/k", content=b'{"value": NaN}', headers=JSON)
    assert answer.status_code == 400  # NaN is no JSON: a bad request, as for every body
