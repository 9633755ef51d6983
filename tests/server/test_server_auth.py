"""API keys, roles and the route table: every route answers each caller as the table says."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flux.client import AsyncFluxClient
from flux.config import ADMIN_KEY_FILE
from flux.errors import ApiError, NotFoundError
from flux.protocol import Role
from flux_server import ServerOptions, create_app, notices
from flux_server.access import ROUTE_ACCESS, Access, allows, routes_of
from flux_server.db.notifier import listener_name
from flux_server.keys import key_id_of
from server_support import HELLO, JSON

from tests.support.waiting import wait_until_async

DOCS = Path(__file__).parents[2] / "docs" / "security.md"
ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)


def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(ServerOptions(database_url=f"sqlite:///{tmp_path}/flux.db", home=tmp_path))
    return {(method, template) for method, template, _ in routes_of(app) if method != "HEAD"}


def test_every_route_of_the_app_is_in_the_table_and_no_other(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    missing = sorted(f"{m} {p}" for m, p in routes - set(ROUTE_ACCESS))
    assert not missing, f"routes without an entry in flux_server.access.ROUTE_ACCESS: {missing}"
    stale = sorted(f"{m} {p}" for m, p in set(ROUTE_ACCESS) - routes)
    assert not stale, f"entries of ROUTE_ACCESS that are no route of the app: {stale}"


def test_the_docs_show_the_table() -> None:
    rows = re.findall(r"^\| `([A-Z]+)` \| `([^`]+)` \| ([^|]+) \|$", DOCS.read_text(), re.M)
    documented = {(method, path): who.strip() for method, path, who in rows}
    assert documented == {key: rule.describe() for key, rule in ROUTE_ACCESS.items()}


# -- every route, every caller --------------------------------------------------------------------


def _sample(template: str) -> str:
    """A path of ``template`` with values each parameter's pattern takes."""
    values = {"mode": "async", "key_id": "0123456789ab"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "x1"), template)


@pytest.fixture
async def keyed(start_server):
    """A server with authentication on and a key of each role."""
    server = await start_server(auth="on")
    keys = {role: (await server.runtime.keys.create(f"k-{role}", role)).key for role in ROLES}
    return server, keys


CSRF = "t" * 32


async def _call(server, method: str, template: str, key: str | None) -> int:
    headers = {**JSON, **({"Authorization": f"Bearer {key}"} if key else {})}
    body = b"{}" if method in ("POST", "PATCH") else None
    if template.startswith("/console") and method == "POST":  # a form of a console page
        headers = {
            "Origin": "http://flux.test",
            "Cookie": f"flux_csrf={CSRF}",
            "Content-Type": "application/x-www-form-urlencoded",
            **({"Authorization": f"Bearer {key}"} if key else {}),
        }
        body = f"csrf={CSRF}".encode()
    response = await server.http.request(method, _sample(template), content=body, headers=headers)
    return response.status_code


@pytest.mark.parametrize(
    ("method", "template"), sorted(ROUTE_ACCESS), ids=[" ".join(k) for k in sorted(ROUTE_ACCESS)]
)
async def test_each_route_answers_each_role_as_the_table_says(keyed, method, template) -> None:
    if template.endswith("/stream"):
        pytest.skip("an event stream: its refusals are covered by the stream tests")
    server, keys = keyed
    rule = ROUTE_ACCESS[(method, template)]
    anonymous = await _call(server, method, template, None)
    if (method, template) == ("POST", "/console/login"):
        assert anonymous == 401  # public, and refuses the key it was not given
        return
    elif rule.access == Access.PUBLIC:
        assert anonymous not in (401, 403)
    elif template.startswith("/console") and method == "GET":
        assert anonymous == 303  # to the login page
    else:
        assert anonymous == 401
    for role, key in keys.items():
        status = await _call(server, method, template, key)
        if rule.access in (Access.WORKER, Access.BOOTSTRAP):
            assert status == 401, role  # a key is no worker's token
        elif allows(rule, role):
            assert status not in (401, 403), (role, status)
        elif template.startswith("/console") and method == "POST":
            assert status == 303, (role, status)  # back to the form's page, saying why
        else:
            assert status == 403, (role, status)


# -- keys -----------------------------------------------------------------------------------------


async def test_refusals_say_how_to_authenticate_and_which_role_is_needed(keyed) -> None:
    server, keys = keyed
    missing = await server.http.get("/workflows")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["message"]
    assert "FLUX_API_KEY" in missing.json()["message"]
    viewer = {"Authorization": f"Bearer {keys[Role.VIEWER]}"}
    refused = await server.http.get("/admin/secrets/X", headers=viewer)
    assert refused.status_code == 403
    message = refused.json()["message"]
    assert "needs the admin role" in message and "'k-viewer'" in message and "viewer" in message


async def test_whoami_names_the_caller(start_server, keyed) -> None:
    server, keys = keyed
    async with AsyncFluxClient(
        "http://flux.test", transport=server.transport, api_key=keys[Role.OPERATOR]
    ) as client:
        me = await client.whoami()
    assert (me.kind, me.name, me.role, me.authentication) == ("key", "k-operator", "operator", True)
    assert me.key_id == key_id_of(keys[Role.OPERATOR])
    worker = await server.worker("w1", connect=False)
    token = {"Authorization": f"Bearer {worker.ch.session_token}"}
    as_worker = (await server.http.get("/auth/whoami", headers=token)).json()
    assert (as_worker["kind"], as_worker["name"], as_worker["role"]) == ("worker", "w1", "worker")
    off = await start_server()  # loopback, auth auto: off
    assert (await off.client.whoami()).model_dump() == {
        "kind": "anonymous",
        "name": "anonymous",
        "role": "admin",
        "key_id": None,
        "expires_at": None,
        "authentication": False,
    }


async def test_keys_are_created_shown_once_listed_and_revoked(keyed) -> None:
    server, keys = keyed
    async with AsyncFluxClient(
        "http://flux.test", transport=server.transport, api_key=keys[Role.ADMIN]
    ) as admin:
        created = await admin.create_key("ci", "operator")
        assert created.key.startswith("flux_") and created.key not in repr(created)
        listed = {k.id: k for k in await admin.list_keys()}
        assert listed[created.id].name == "ci"
        assert "key" not in type(listed[created.id]).model_fields
        assert listed[created.id].created_by == f"key 'k-admin' ({key_id_of(keys[Role.ADMIN])})"
        async with AsyncFluxClient(
            "http://flux.test", transport=server.transport, api_key=created.key
        ) as ci:
            assert (await ci.whoami()).name == "ci"
            await admin.revoke_key(created.id)
            with pytest.raises(ApiError) as refused:
                await ci.whoami()
            assert refused.value.status_code == 401
            assert "revoked" in refused.value.message
        with pytest.raises(NotFoundError):
            await admin.revoke_key("0123456789ab")
        with pytest.raises(ApiError) as past:
            await admin.create_key("old", "viewer", expires_at=datetime.now(UTC) - timedelta(1))
        assert past.value.status_code == 400
    async with server.runtime.db.read() as conn:
        hashes = (await conn.execute(sa.text("SELECT key_hash FROM api_keys"))).scalars().all()
    assert created.key not in hashes and all(len(h) == 64 for h in hashes)


async def test_an_expired_key_is_refused(keyed) -> None:
    server, keys = keyed
    key = keys[Role.VIEWER]
    headers = {"Authorization": f"Bearer {key}"}
    assert (await server.http.get("/workflows", headers=headers)).status_code == 200
    async with server.runtime.db.write() as tx:
        await tx.conn.execute(
            sa.text("UPDATE api_keys SET expires_at = :t WHERE id = :id"),
            {"t": _db_time(server, datetime.now(UTC) - timedelta(seconds=1)), "id": key_id_of(key)},
        )
    server.runtime.keys.forget(key_id_of(key) or "")
    assert (await server.http.get("/workflows", headers=headers)).status_code == 401


async def test_a_key_that_expires_after_its_first_use_is_refused(keyed, monkeypatch) -> None:
    """A key the server has seen (and remembers) stops working the moment it expires."""
    server, _ = keyed
    expires = datetime.now(UTC) + timedelta(hours=1)
    key = (await server.runtime.keys.create("brief", Role.VIEWER, expires_at=expires)).key
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(2):
        assert (await server.http.get("/workflows", headers=headers)).status_code == 200
    later = expires + timedelta(seconds=1)
    monkeypatch.setattr("flux_server.principals.utcnow", lambda: later)
    assert (await server.http.get("/workflows", headers=headers)).status_code == 401


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_key_revoked_on_one_replica_is_refused_by_another(start_server) -> None:
    """Replica B has checked (and remembers) the key; A revokes it; B refuses it as soon as
    A's note arrives."""
    a = await start_server(auth="on")
    b = await start_server(auth="on")
    created = await a.runtime.keys.create("roaming", Role.VIEWER)
    headers = {"Authorization": f"Bearer {created.key}"}
    for _ in range(2):
        assert (await b.http.get("/workflows", headers=headers)).status_code == 200
    await a.runtime.keys.revoke(created.id)

    async def refused() -> bool:
        return (await b.http.get("/workflows", headers=headers)).status_code == 401

    await wait_until_async(refused, what="replica B refusing the revoked key", interval=0.1)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_replica_that_lost_its_listener_forgets_what_it_may_have_missed(
    start_server,
) -> None:
    """A revocation whose note B never heard (B's LISTEN connection was down): once B
    listens again it checks keys and worker tokens against the database anew."""
    a = await start_server(auth="on")
    b = await start_server(auth="on")
    created = await a.runtime.keys.create("unheard", Role.VIEWER)
    headers = {"Authorization": f"Bearer {created.key}"}
    assert (await b.http.get("/workflows", headers=headers)).status_code == 200
    async with a.runtime.db.write() as tx:  # revoked without a note: as if B missed it
        await tx.conn.execute(
            sa.text("UPDATE api_keys SET revoked_at = :t WHERE id = :id"),
            {"t": datetime.now(UTC), "id": created.id},
        )
    assert (await b.http.get("/workflows", headers=headers)).status_code == 200  # B remembers
    async with a.runtime.db.write() as tx:
        await tx.conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"
            ),
            {"n": listener_name(b.runtime.db.origin)},
        )

    async def refused() -> bool:
        return (await b.http.get("/workflows", headers=headers)).status_code == 401

    await wait_until_async(refused, what="B refusing the key once it listens again", interval=0.1)


def _db_time(server, value: datetime):
    return value.timestamp() if server.runtime.db.is_sqlite else value


async def test_a_key_with_a_wrong_secret_is_refused(keyed) -> None:
    server, keys = keyed
    key = keys[Role.ADMIN]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for token in (forged, "flux_zzzzzzzzzzzz_x", "flux_", "not-a-key"):
        response = await server.http.get("/workflows", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


async def test_failed_authentications_are_limited_per_address(start_server) -> None:
    server = await start_server(auth="on", auth_failure_limit=3, auth_failure_window=600)
    good = (await server.runtime.keys.create("ok", Role.VIEWER)).key
    bad = {"Authorization": "Bearer flux_0123456789ab_wrong"}
    for _ in range(3):
        assert (await server.http.get("/workflows", headers=bad)).status_code == 401
    blocked = await server.http.get("/workflows", headers=bad)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 600
    # While blocked, even a good key is not looked at; public routes still answer.
    good_headers = {"Authorization": f"Bearer {good}"}
    assert (await server.http.get("/workflows", headers=good_headers)).status_code == 429
    assert (await server.http.get("/health")).status_code == 200


async def test_worker_token_failures_count_too(start_server) -> None:
    server = await start_server(auth_failure_limit=2)  # authentication off: workers still count
    bad = {"Authorization": "Bearer wrong", **JSON}
    for _ in range(2):
        response = await server.http.post("/workers/register", content=b"{}", headers=bad)
        assert response.status_code == 401
    blocked = await server.http.post("/workers/register", content=b"{}", headers=bad)
    assert blocked.status_code == 429


async def test_failed_console_logins_count_too(start_server) -> None:
    server = await start_server(auth="on", auth_failure_limit=2, auth_failure_window=600)
    good = (await server.runtime.keys.create("ok", Role.VIEWER)).key
    http = server.http
    await http.get("/console/login")
    form = {"csrf": http.cookies.get("flux_csrf"), "key": "nope", "next": "/console"}
    origin = {"Origin": "http://flux.test"}
    for _ in range(2):
        assert (await http.post("/console/login", data=form, headers=origin)).status_code == 401
    # The address guessed too often: its next key is not looked at.
    refused = await http.get("/workflows", headers={"Authorization": f"Bearer {good}"})
    assert refused.status_code == 429


# -- the admin key ------------------------------------------------------------------------------


async def test_the_first_start_with_auth_on_writes_an_admin_key(start_server, tmp_path) -> None:
    server = await start_server(auth="on")
    path = Path(server.options.home) / ADMIN_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    async with AsyncFluxClient("http://flux.test", transport=server.transport, api_key=key) as c:
        assert (await c.whoami()).role == "admin"
    again = await start_server(auth="on")  # same database: the key exists, none is made
    assert path.read_text().strip() == key
    assert [k.name for k in await again.runtime.keys.list()] == ["admin"]


async def test_no_admin_key_while_authentication_is_off(start_server) -> None:
    server = await start_server()
    assert not (Path(server.options.home) / ADMIN_KEY_FILE).exists()
    assert await server.runtime.keys.list() == []


def test_off_on_an_exposed_address_needs_insecure(tmp_path: Path) -> None:
    from flux.errors import UsageError

    options = ServerOptions(
        database_url=f"sqlite:///{tmp_path}/flux.db", home=tmp_path, host="0.0.0.0", auth="off"
    )
    with pytest.raises(UsageError, match="--insecure"):
        create_app(options)
    from dataclasses import replace

    create_app(replace(options, insecure=True))


# -- workers ----------------------------------------------------------------------------------


async def test_a_worker_starts_children_of_what_it_holds_only(keyed) -> None:
    server, keys = keyed
    admin = {"Authorization": f"Bearer {keys[Role.ADMIN]}"}
    files = {"file": ("flows.py", HELLO, "text/x-python")}
    assert (await server.http.post("/workflows", files=files, headers=admin)).status_code == 200
    w1 = await server.worker("w1")
    w2 = await server.worker("w2", connect=False)
    started = await server.http.post("/workflows/hello/run/async", json="x", headers=admin)
    held = (await w1.take()).execution_id
    assert started.json()["execution_id"] == held

    async def child(token: str, **params: str) -> int:
        headers = {"Authorization": f"Bearer {token}", **JSON}
        url = "/workflows/hello/run/async"
        response = await server.http.post(url, content=b'"c"', headers=headers, params=params)
        return response.status_code

    mine, theirs = w1.ch.session_token, w2.ch.session_token
    assert await child(mine, parent=held, execution_id="child-1") == 200
    assert await child(mine, parent=held, execution_id="child-1") == 200  # answers for it
    assert await child(mine) == 403
    assert await child(mine, parent="not-held") == 403
    assert await child(theirs, parent=held) == 403
    for path in ("/workflows", "/admin/secrets", "/workers"):
        response = await server.http.get(path, headers={"Authorization": f"Bearer {mine}"})
        assert response.status_code == 403, path
        assert "worker 'w1'" in response.json()["message"]


async def test_streams_need_a_key(keyed) -> None:
    server, _ = keyed
    response = await server.http.get("/executions/x1/stream")
    assert response.status_code == 401


# -- the console --------------------------------------------------------------------------------


async def test_the_console_logs_a_browser_in_with_a_key_in_a_cookie(keyed) -> None:
    server, keys = keyed
    http = server.http
    page = await http.get("/console/executions?state=FAILED")
    assert page.status_code == 303
    # Back to the same page, filters included, after logging in.
    assert page.headers["location"] == "/console/login?next=/console/executions%3Fstate%3DFAILED"
    login = await http.get("/console/login")
    assert login.status_code == 200 and "API key" in login.text
    csrf = http.cookies.get("flux_csrf")
    form = {"csrf": csrf, "key": keys[Role.OPERATOR], "next": "/console/workflows"}
    origin = {"Origin": "http://flux.test"}
    wrong = await http.post("/console/login", data={**form, "key": "nope"}, headers=origin)
    assert wrong.status_code == 401 and "unknown, expired or revoked" in wrong.text
    elsewhere = await http.post(
        "/console/login", data={**form, "next": "https://evil.example/"}, headers=origin
    )
    assert elsewhere.headers["location"] == "/console"  # never a redirect to another site
    done = await http.post("/console/login", data=form, headers=origin)
    assert done.status_code == 303 and done.headers["location"] == "/console/workflows"
    cookie = done.headers["set-cookie"]
    assert "flux_key=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    workflows = await http.get("/console/workflows")
    assert workflows.status_code == 200 and "k-operator (operator)" in workflows.text
    assert (await http.get("/workflows")).status_code == 401  # the cookie is the console's only
    await server.runtime.keys.revoke(key_id_of(keys[Role.OPERATOR]) or "")
    stale = await http.get("/console/workflows")  # a revoked key: log in again
    assert stale.status_code == 303
    assert stale.headers["location"] == "/console/login?next=/console/workflows&expired=1"
    assert "flux_key" not in http.cookies  # the answer removed the cookie
    again = await http.get("/console/login?next=/console/workflows&expired=1")
    assert "no longer valid" in again.text
    revoked = await http.post("/console/login", data=form, headers=origin)
    assert revoked.status_code == 401 and "flux_key" not in http.cookies
    out = await http.post("/console/logout", data={"csrf": csrf}, headers=origin)
    assert out.status_code == 303 and "flux_key" not in http.cookies


async def test_a_console_form_a_role_may_not_send_goes_back_to_its_page_saying_why(
    keyed,
) -> None:
    server, keys = keyed
    headers = {
        "Origin": "http://flux.test",
        "Cookie": f"flux_csrf={CSRF}",
        "Authorization": f"Bearer {keys[Role.VIEWER]}",
    }
    form = {"csrf": CSRF, "ids": "x1"}
    page = "http://flux.test/console/executions/cancel?ids=x1"
    answer = await server.http.post(
        "/console/executions/cancel", data=form, headers={**headers, "Referer": page}
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/executions/cancel?ids=x1"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("flux_flash=") and "Path=/console" in cookie and "HttpOnly" in cookie
    notice = notices.decode(cookie.split(";")[0].split("=", 1)[1])
    assert notice is not None and notice[0] == "error"
    assert "needs the operator role" in notice[1] and "k-viewer" in notice[1]
    for referer in ("https://evil.example/console/x", "http://flux.test/workflows", None):
        elsewhere = await server.http.post(
            "/console/executions/cancel",
            data=form,
            headers={**headers, **({"Referer": referer} if referer else {})},
        )
        assert elsewhere.headers["location"] == "/console", referer  # never off the console


# -- the OpenAPI document ---------------------------------------------------------------------


async def test_the_openapi_document_declares_what_is_answered(server) -> None:
    """Before: 200/201 and 422 only, no patterns. The fuzzing test holds the server to it."""
    document = (await server.http.get("/openapi.json")).json()
    secret = document["paths"]["/admin/secrets/{name}"]["get"]
    assert {"400", "401", "403", "404", "413", "422", "426", "429"} <= set(secret["responses"])
    assert secret["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    run = document["paths"]["/workflows/{name}/run/{mode}"]["post"]
    assert {"404", "409", "415"} <= set(run["responses"])
    schemas = {p["name"]: p["schema"] for p in run["parameters"] if p["in"] == "path"}
    assert schemas["mode"]["enum"] == ["sync", "async", "stream"]
    assert schemas["name"]["pattern"].startswith("^[A-Za-z0-9_]")
    health = document["paths"]["/health"]["get"]
    assert "401" not in health["responses"] and "429" not in health["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]


# -- the audit log ------------------------------------------------------------------------------


async def test_key_secret_and_cancel_actions_are_audited_without_values(keyed, caplog) -> None:
    import json
    import logging

    server, keys = keyed
    caplog.set_level(logging.INFO, logger="flux.audit")
    admin = {"Authorization": f"Bearer {keys[Role.ADMIN]}"}
    http = server.http
    value = "the-secret-value-never-logged"
    await http.post("/admin/secrets", json={"name": "API_KEY", "value": value}, headers=admin)
    await http.get("/admin/secrets/API_KEY", headers=admin)
    await http.delete("/admin/secrets/API_KEY", headers=admin)
    created = await http.post("/admin/keys", json={"name": "ci", "role": "viewer"}, headers=admin)
    await http.delete(f"/admin/keys/{created.json()['id']}", headers=admin)
    files = {"file": ("flows.py", HELLO, "text/x-python")}
    await http.post("/workflows", files=files, headers=admin)
    started = await http.post("/workflows/hello/run/async", json=1, headers=admin)
    execution_id = started.json()["execution_id"]
    await http.get(f"/workflows/hello/cancel/{execution_id}", headers=admin)
    entries = [json.loads(r.getMessage()) for r in caplog.records if r.name == "flux.audit"]
    actor = f"key 'k-admin' ({key_id_of(keys[Role.ADMIN])})"
    assert [(e["action"], e["target"]) for e in entries] == [
        ("secret.set", "API_KEY"),
        ("secret.read", "API_KEY"),
        ("secret.delete", "API_KEY"),
        ("key.create", created.json()["id"]),
        ("key.revoke", created.json()["id"]),
        ("execution.cancel", execution_id),
    ]
    assert {e["actor"] for e in entries} == {actor} and all(e["at"] for e in entries)
    assert value not in caplog.text and created.json()["key"] not in caplog.text
