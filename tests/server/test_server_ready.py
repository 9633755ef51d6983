"""``GET /ready``: 200 when the database answers at this server's migration head and the
server is not stopping; 503 naming the check otherwise. ``/health`` answers as before."""

from __future__ import annotations

import sqlalchemy as sa
from flux_server.db.migrate import VERSION_TABLE, heads


async def test_ready_when_the_database_is_current(server) -> None:
    answer = await server.http.get("/ready")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "checks": {"server": "ok", "database": "ok", "migrations": "ok"},
    }
    assert (await server.http.get("/health")).status_code == 200


async def test_not_ready_behind_the_migration_head_or_while_stopping(server) -> None:
    [head] = heads()
    db = server.runtime.db

    def set_version(version: str):
        return lambda tx: tx.conn.execute(
            sa.text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": version}
        )

    await db.run_write(set_version("0001"))
    try:
        behind = await server.http.get("/ready")
        assert behind.status_code == 503
        body = behind.json()
        assert body["status"] == "not_ready" and body["checks"]["database"] == "ok"
        assert "0001" in body["checks"]["migrations"] and head in body["checks"]["migrations"]
        assert (await server.http.get("/health")).status_code == 200  # alive all the same
    finally:
        await db.run_write(set_version(head))

    server.runtime.stopping = True
    try:
        stopping = await server.http.get("/ready")
        assert stopping.status_code == 503 and stopping.json()["checks"]["server"] == "stopping"
    finally:
        server.runtime.stopping = False
