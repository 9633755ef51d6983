"""``/admin/secrets`` and the worker's secrets endpoint: values encrypted at rest, names only in
listings, clear errors (never echoing a value), and a clear error for a changed key."""

from __future__ import annotations

import logging
import stat

import pytest
import sqlalchemy as sa
from flux.errors import ApiError, NotFoundError, UsageError
from flux_server.db.tables import server_state

# The hello workflow, asking for the secrets the tests give its executions' worker.
HELLO = b"""
from flux import workflow

@workflow.with_options(secret_requests=["API_KEY", "DB_URL", "NOPE", "ALSO_NOPE"])
async def hello(ctx):
    return f"Hello, {ctx.input}"
"""

VALUE = "pa55-w0rd-that-must-not-leak"


async def test_set_get_list_update_delete(server) -> None:
    client = server.client
    assert await client.list_secrets() == []
    info = await client.set_secret("API_KEY", VALUE)
    assert info.name == "API_KEY" and info.updated_at is not None
    await client.set_secret("LIMITS", {"rps": 5, "burst": [1, 2]})

    assert await client.get_secret("API_KEY") == VALUE
    assert await client.get_secret("LIMITS") == {"rps": 5, "burst": [1, 2]}
    listed = await client.list_secrets()
    assert [s.name for s in listed] == ["API_KEY", "LIMITS"]

    # Create or update: the same name again replaces the value.
    again = await client.set_secret("API_KEY", "rotated")
    assert again.updated_at is not None and again.updated_at >= info.updated_at
    assert await client.get_secret("API_KEY") == "rotated"
    assert [s.name for s in await client.list_secrets()] == ["API_KEY", "LIMITS"]

    deleted = await client.delete_secret("API_KEY")
    assert (deleted.name, deleted.deleted) == ("API_KEY", True)
    with pytest.raises(NotFoundError, match="'API_KEY'"):
        await client.get_secret("API_KEY")
    with pytest.raises(NotFoundError, match="'API_KEY'"):
        await client.delete_secret("API_KEY")
    assert [s.name for s in await client.list_secrets()] == ["LIMITS"]


async def test_the_spec_requests(server) -> None:
    """The README's curl calls, as raw HTTP."""
    http = server.http
    created = await http.post("/admin/secrets", json={"name": "API_KEY", "value": VALUE})
    assert created.status_code == 200, created.text
    listed = await http.get("/admin/secrets")
    assert listed.json() == [{"name": "API_KEY", "updated_at": created.json()["updated_at"]}]
    assert VALUE not in listed.text
    shown = await http.get("/admin/secrets/API_KEY")
    assert shown.json() == {"name": "API_KEY", "value": VALUE}
    assert (await http.delete("/admin/secrets/API_KEY")).status_code == 200
    assert (await http.get("/admin/secrets/API_KEY")).status_code == 404


@pytest.mark.parametrize("name", ["1ABC", "has space", "semi;colon", "ü", "x" * 129, ""])
async def test_invalid_names_are_rejected_without_echoing_the_value(server, name) -> None:
    http = server.http
    answer = await http.post("/admin/secrets", json={"name": name, "value": VALUE})
    assert answer.status_code == 400, answer.text
    assert "invalid secret name" in answer.json()["message"]
    assert VALUE not in answer.text
    if name:
        for method in ("GET", "DELETE"):
            by_path = await http.request(method, f"/admin/secrets/{name}")
            assert by_path.status_code in (400, 404), (method, by_path.text)
            if by_path.status_code == 400:
                assert "invalid secret name" in by_path.json()["message"]
    assert await server.client.list_secrets() == []


async def test_malformed_bodies(server) -> None:
    http = server.http
    no_value = await http.post("/admin/secrets", json={"name": "API_KEY"})
    assert no_value.status_code == 422 and "value" in no_value.json()["message"]
    wrong_type = await http.post("/admin/secrets", json={"name": 7, "value": VALUE})
    assert wrong_type.status_code == 422 and VALUE not in wrong_type.text
    not_json = await http.post(
        "/admin/secrets",
        content=b'{"name": "A", "value": NaN}',
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400
    # A JSON null is a value like any other.
    assert (
        await http.post("/admin/secrets", json={"name": "EMPTY", "value": None})
    ).status_code == 200
    assert await server.client.get_secret("EMPTY") is None


async def test_values_are_encrypted_at_rest(server) -> None:
    await server.client.set_secret("API_KEY", VALUE)
    async with server.runtime.db.read() as conn:
        (name, blob) = (await conn.execute(sa.text("SELECT name, value FROM secrets"))).one()
    assert name == "API_KEY"
    assert VALUE.encode() not in bytes(blob)
    assert len(bytes(blob)) > len(VALUE)


async def test_a_different_key_is_a_clear_error(start_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    first = await start_server()
    await first.register(HELLO)
    await first.client.set_secret("API_KEY", VALUE)

    other_key = "another-key-entirely-0123456789abcdef"
    with pytest.raises(UsageError, match="is not the one this database's secrets"):
        await start_server(encryption_key=other_key)  # refused at start since revision 0006
    # A database whose key was never recorded (written before 0006) lets such a server start;
    # reading a secret then says what is wrong.
    await first.runtime.db.run_write(lambda tx: tx.conn.execute(sa.delete(server_state)))
    other = await start_server(encryption_key=other_key)
    with pytest.raises(ApiError) as caught:
        await other.client.get_secret("API_KEY")
    assert caught.value.status_code == 500
    assert caught.value.message.startswith(
        "cannot decrypt secret 'API_KEY': the encryption key differs from the one the secrets "
        "were stored with"
    )

    # A worker asking for it gets the same message, not garbage.
    run = await other.client.run("hello", "x")
    worker = await other.worker()
    claim = await worker.take()
    assert claim.execution_id == run.execution_id
    with pytest.raises(ApiError, match="cannot decrypt secret 'API_KEY'"):
        await worker.ch.get_secrets(run.execution_id, ["API_KEY"])
    # Names are still listed; the original key still reads the value.
    assert [s.name for s in await other.client.list_secrets()] == ["API_KEY"]
    assert await first.client.get_secret("API_KEY") == VALUE
    assert VALUE not in caplog.text


async def test_the_key_is_generated_into_the_home_with_mode_0600(start_server, options) -> None:
    server = await start_server(encryption_key=None)
    await server.client.set_secret("API_KEY", VALUE)
    key_file = options.home / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert VALUE not in key_file.read_text()
    # Another server with the same home reads it back.
    again = await start_server(encryption_key=None)
    assert await again.client.get_secret("API_KEY") == VALUE


async def test_workers_get_secrets_set_through_the_admin_api(server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await server.register(HELLO)
    await server.client.set_secret("API_KEY", VALUE)
    await server.client.set_secret("DB_URL", "postgresql://user:pw@db/app")
    run = await server.client.run("hello", "x")
    worker = await server.worker()
    claim = await worker.take()
    secrets = await worker.ch.get_secrets(claim.execution_id, ["API_KEY", "DB_URL"])
    assert secrets == {"API_KEY": VALUE, "DB_URL": "postgresql://user:pw@db/app"}

    # Missing ones: 404 naming them (names only).
    with pytest.raises(NotFoundError) as caught:
        await worker.ch.get_secrets(claim.execution_id, ["API_KEY", "NOPE", "ALSO_NOPE"])
    assert "'NOPE'" in caught.value.message and "'ALSO_NOPE'" in caught.value.message
    assert "'API_KEY'" not in caught.value.message and VALUE not in caught.value.message

    # Only for an execution the worker holds.
    other = await server.worker("w2")
    with pytest.raises(ApiError) as refused:
        await other.ch.get_secrets(run.execution_id, ["API_KEY"])
    assert refused.value.status_code == 403
    assert VALUE not in caplog.text


async def test_the_encryption_key_rotates_in_place(start_server, options, caplog) -> None:
    from flux.secrets import decrypt_value, derive_key

    old, new = options.encryption_key, "the-new-encryption-key-0123456789abcdef"
    first = await start_server()
    for name in ("API_KEY", "DB_URL"):
        await first.client.set_secret(name, f"{VALUE} {name}")

    # The new key, with the old one among the previous keys: re-encrypted on start.
    caplog.set_level(logging.WARNING, logger="flux.server.secrets")
    rotated = await start_server(encryption_key=new, previous_encryption_keys=(old,))
    assert "re-encrypted 2 secret(s)" in caplog.text and VALUE not in caplog.text
    assert await rotated.client.get_secret("DB_URL") == f"{VALUE} DB_URL"
    async with rotated.runtime.db.read() as conn:
        rows = (await conn.execute(sa.text("SELECT name, value FROM secrets"))).all()
    for name, blob in rows:  # each opens with the new key alone now
        assert decrypt_value(derive_key(new), name, blob) == f"{VALUE} {name}"

    # Done: the new key alone starts; the old key alone does not.
    assert await (await start_server(encryption_key=new)).client.get_secret("API_KEY")
    with pytest.raises(UsageError, match="previous_encryption_keys"):
        await start_server(encryption_key=old)


async def test_a_rotation_that_cannot_open_a_secret_changes_nothing(start_server, options) -> None:
    from flux.secrets import derive_key, encrypt_value

    first = await start_server()
    await first.client.set_secret("API_KEY", VALUE)
    foreign = encrypt_value(derive_key("some-other-key-0123456789abcdef"), "ODD", 1)
    await first.runtime.db.run_write(
        lambda tx: tx.conn.execute(
            sa.text("INSERT INTO secrets (name, value, updated_at) VALUES ('ODD', :v, :t)"),
            {"v": foreign, "t": "2026-01-01T00:00:00+00:00"},
        )
    )
    with pytest.raises(UsageError, match="'ODD' opens with neither"):
        await start_server(
            encryption_key="the-new-encryption-key-0123456789abcdef",
            previous_encryption_keys=(options.encryption_key,),
        )
    assert await (await start_server()).client.get_secret("API_KEY") == VALUE
