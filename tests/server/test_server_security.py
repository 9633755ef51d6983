"""Security defaults: tokens, protocol versions, body limits, bind address."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from flux.domain import EventType
from flux.errors import ApiError, ConflictError
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, RegisterWorkerRequest
from flux_server import ServerOptions
from flux_server.auth import TOKEN_FILE
from server_support import BOOTSTRAP, JSON, record


async def test_registration_needs_the_bootstrap_token(server) -> None:
    request = RegisterWorkerRequest(name="w1")
    for token in ("", "wrong"):
        with pytest.raises(ApiError) as info:
            await server.client.register_worker(request, bootstrap_token=token)
        assert info.value.status_code == 401
    response = await server.http.post("/workers/register", json=request.model_dump())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "api_error"
    # A bad body with no token is still a 401: authentication comes first.
    assert (await server.http.post("/workers/register", content=b"{")).status_code == 401


async def test_worker_calls_need_that_workers_session_token(server) -> None:
    w1 = await server.worker("w1", connect=False)
    w2 = await server.worker("w2", connect=False)
    http = server.http
    assert (await http.post("/workers/w1/heartbeat")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await http.post("/workers/w1/heartbeat", headers=bad)).status_code == 401
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert (await http.post("/workers/w1/heartbeat", headers=basic)).status_code == 401
    theirs = {"Authorization": f"Bearer {w2.ch.session_token}"}
    for method, path in [
        ("POST", "/workers/w1/heartbeat"),
        ("GET", "/workers/w1/connect"),
        ("POST", "/workers/w1/claim/x"),
        ("POST", "/workers/w1/checkpoint/x"),
        ("POST", "/workers/w1/release/x"),
        ("GET", "/workers/w1/secrets/x?names=A"),
    ]:
        response = await http.request(method, path, headers=theirs)
        assert response.status_code == 403, (method, path)
        assert "another worker" in response.json()["message"]
    assert (await w1.ch.heartbeat()).heartbeat_interval > 0


async def test_session_tokens_are_stored_hashed(server) -> None:
    worker = await server.worker("w1", connect=False)
    token = worker.ch.session_token
    async with server.runtime.db.read() as conn:
        stored = (await conn.execute(sa.text("SELECT session_token_hash FROM workers"))).scalar()
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored


async def test_protocol_major_mismatch_is_426_naming_both_versions(server) -> None:
    response = await server.http.get("/health", headers={PROTOCOL_HEADER: "2.0"})
    assert response.status_code == 426
    body = response.json()
    assert body["code"] == "protocol_version"
    assert "2.0" in body["message"] and PROTOCOL_VERSION in body["message"]
    assert (await server.http.get("/health", headers={PROTOCOL_HEADER: "1.7"})).is_success
    assert (await server.http.get("/health", headers={PROTOCOL_HEADER: "x"})).status_code == 426


async def test_oversized_bodies_are_413(server) -> None:
    limit = server.options.max_request_bytes
    http = server.http
    big = b"[" + b"1," * limit + b"1]"
    response = await http.post("/workflows/hello/run/async", content=big, headers=JSON)
    assert response.status_code == 413
    assert str(limit) in response.json()["message"]

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    response = await http.post("/workflows/hello/run/async", content=chunks(), headers=JSON)
    assert response.status_code == 413


async def test_bootstrap_token_is_generated_once_with_mode_0600(start_server, tmp_path) -> None:
    home = tmp_path / "fresh-home"
    first = await start_server(bootstrap_token=None, home=home)
    path = home / TOKEN_FILE
    token = path.read_text().strip()
    assert len(token) >= 32 and token != BOOTSTRAP
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    session = await first.client.register_worker(
        RegisterWorkerRequest(name="w1"), bootstrap_token=token
    )
    assert session.session_token
    second = await start_server(bootstrap_token=None, home=home)
    assert path.read_text().strip() == token
    with pytest.raises(ApiError):
        await second.client.register_worker(
            RegisterWorkerRequest(name="w2"), bootstrap_token=BOOTSTRAP
        )


def test_binds_localhost_by_default() -> None:
    assert ServerOptions().host == "localhost"
    from flux.config import FluxSettings

    assert ServerOptions.from_settings(FluxSettings()).host == "localhost"


async def test_docs_and_openapi_are_served(server) -> None:
    http = server.http
    assert (await http.get("/docs")).status_code == 200
    spec = (await http.get("/openapi.json")).json()
    for path in [
        "/workflows",
        "/workflows/{name}",
        "/workflows/{name}/run/{mode}",
        "/workflows/{name}/resume/{execution_id}/{mode}",
        "/workflows/{name}/status/{execution_id}",
        "/workflows/{name}/cancel/{execution_id}",
        "/workers",
        "/workers/register",
        "/workers/{name}/connect",
        "/workers/{name}/claim/{execution_id}",
        "/workers/{name}/checkpoint/{execution_id}",
        "/workers/{name}/release/{execution_id}",
        "/workers/{name}/heartbeat",
        "/workers/{name}/secrets/{execution_id}",
        "/health",
    ]:
        assert path in spec["paths"], path
    health = await server.client.health()
    assert health.protocol_version == PROTOCOL_VERSION
    assert health.database in ("sqlite", "postgresql")


SECRET_FLOWS = b"""
from flux import task, workflow
from flux_agents import Agent


@task.with_options(secret_requests=["API_KEY"])
async def call_api(secrets={}):
    return secrets["API_KEY"]


helper = Agent("openai/x", name="helper", api_key_secret="LLM_KEY")


@workflow.with_options(secret_requests=["DB_URL"])
async def uses_secrets(ctx):
    return await call_api()
"""


async def test_a_worker_gets_only_the_secrets_its_execution_asked_for(server) -> None:
    """Before: a worker holding any execution could read any secret by name."""
    for name in ("API_KEY", "DB_URL", "LLM_KEY", "OTHER"):
        await server.client.set_secret(name, f"value of {name}")
    await server.register()
    await server.register(SECRET_FLOWS)
    worker = await server.worker("w1")
    await server.client.run("hello")
    plain = await worker.take()
    await server.client.run("uses_secrets")
    asking = await worker.take()
    token = {"Authorization": f"Bearer {worker.ch.session_token}"}

    async def get(execution_id: str, names: str):
        url = f"/workers/w1/secrets/{execution_id}"
        return await server.http.get(url, params={"names": names}, headers=token)

    refused = await get(plain.execution_id, "OTHER")
    assert refused.status_code == 403
    assert "did not ask for secret(s) 'OTHER'" in refused.json()["message"]
    assert "value of" not in refused.text
    assert (await get(asking.execution_id, "OTHER")).status_code == 403
    assert (await get(asking.execution_id, "API_KEY,OTHER")).status_code == 403
    granted = await get(asking.execution_id, "API_KEY,DB_URL,LLM_KEY")
    assert granted.status_code == 200
    assert granted.json()["secrets"] == {
        "API_KEY": "value of API_KEY",
        "DB_URL": "value of DB_URL",
        "LLM_KEY": "value of LLM_KEY",
    }


async def test_a_worker_cannot_touch_an_execution_another_worker_holds(server) -> None:
    """With its own token on its own paths, w2 can neither claim, checkpoint nor read the
    secrets of an execution w1 holds, and nothing it tried changed the execution."""
    await server.client.set_secret("API_KEY", "value of API_KEY")
    await server.register()
    await server.register(SECRET_FLOWS)
    w1 = await server.worker("w1")
    w2 = await server.worker("w2", connect=False)
    await server.client.run("uses_secrets")
    held = await w1.take()
    with pytest.raises(ConflictError, match="w1"):
        await w2.claim(held.execution_id)
    with pytest.raises(ConflictError):
        started = [record(EventType.WORKFLOW_STARTED)]
        await w2.checkpoint(held.execution_id, held.generation, started)
    token = {"Authorization": f"Bearer {w2.ch.session_token}"}
    url = f"/workers/w2/secrets/{held.execution_id}"
    refused = await server.http.get(url, params={"names": "API_KEY"}, headers=token)
    assert refused.status_code in (403, 409) and "value of" not in refused.text
    # w1 still holds it: its secrets, its checkpoints, its result.
    mine = {"Authorization": f"Bearer {w1.ch.session_token}"}
    url = f"/workers/w1/secrets/{held.execution_id}"
    granted = await server.http.get(url, params={"names": "API_KEY"}, headers=mine)
    assert granted.json()["secrets"] == {"API_KEY": "value of API_KEY"}
    await w1.finish(held, "done")
    assert (await server.client.status("uses_secrets", held.execution_id)).output == "done"


async def test_the_home_and_the_database_are_the_owners_only(start_server, tmp_path) -> None:
    """Before: the home was created 0755 and the SQLite files 0644."""
    server = await start_server(bootstrap_token=None)  # generated into the home
    if not server.runtime.db.is_sqlite:
        pytest.skip("a SQLite file")
    await server.register()  # something written: the WAL exists
    home = Path(server.options.home)
    database = tmp_path / "db" / "flux.db"
    assert _mode(home) == _mode(database.parent) == 0o700
    for path in (database, Path(f"{database}-wal"), home / TOKEN_FILE):
        assert _mode(path) == 0o600, path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_database_readable_by_others_is_narrowed(tmp_path) -> None:
    from flux._files import private_file

    path = tmp_path / "flux.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    private_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
