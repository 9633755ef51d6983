"""What the servers of one database share: the key its secrets were written with (a replica
with another key, or with none, refuses to start, in one line, and changes nothing) and the
bootstrap token workers register with (configured, or else the database's)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
from flux.errors import ApiError, UsageError
from flux.protocol import RegisterWorkerRequest
from flux_server.auth import TOKEN_FILE
from flux_server.runtime import preflight
from flux_server.store.server_state import key_fingerprint


async def test_a_server_with_another_key_refuses_to_start(options, tmp_path) -> None:
    await preflight(options)  # the first server records its key's fingerprint
    await preflight(options)  # the same key again: fine
    other = replace(options, encryption_key="another-key-material-for-a-second-replica")
    with pytest.raises(UsageError, match="is not the one this database's secrets") as info:
        await preflight(other)
    assert info.value.details["expected"] == key_fingerprint_of(options)
    # A replica with no key at all is refused before it makes one of its own.
    keyless = replace(options, encryption_key=None, home=tmp_path / "replica-home")
    with pytest.raises(UsageError, match="has no secrets key") as info:
        await preflight(keyless)
    assert info.value.details["expected"] == key_fingerprint_of(options)
    assert not (tmp_path / "replica-home").exists()


def key_fingerprint_of(options) -> str:
    from flux_server.runtime import secrets_key

    return key_fingerprint(secrets_key(options))


def test_flux_server_says_it_in_one_line(options, tmp_path) -> None:
    import asyncio

    asyncio.run(preflight(options))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flux_server",
            "--port",
            "0",
            "--database-url",
            options.database_url,
        ],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("FLUX_")},
            "FLUX_HOME": str(tmp_path / "elsewhere"),
            "FLUX_SECURITY__ENCRYPTION_KEY": "not-the-database-key-material-000000",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    last = proc.stderr.splitlines()[-1]  # after the start-up log lines (migrations)
    assert last.startswith("flux-server: this server's secrets key")
    assert "Traceback" not in proc.stderr


async def test_a_replica_without_a_token_accepts_the_one_the_database_recorded(
    start_server, tmp_path
) -> None:
    first = await start_server(bootstrap_token="token-of-the-fleet-0123456789")
    replica = await start_server(bootstrap_token=None, home=tmp_path / "replica-home")
    assert not (tmp_path / "replica-home" / TOKEN_FILE).exists()  # none of its own made
    request = RegisterWorkerRequest(name="w1")
    for server in (first, replica):
        await server.client.register_worker(
            request, bootstrap_token="token-of-the-fleet-0123456789"
        )
        with pytest.raises(ApiError) as refused:
            await server.client.register_worker(request, bootstrap_token="another-token")
        assert refused.value.status_code == 401


async def test_a_configured_token_replaces_the_recorded_one_and_says_so(
    start_server, tmp_path, caplog
) -> None:
    await start_server(bootstrap_token="old-token-0123456789")
    changed = await start_server(bootstrap_token="new-token-0123456789")
    assert "differs from the token the other servers" in caplog.text
    later = await start_server(bootstrap_token=None, home=tmp_path / "later-home")
    for server in (changed, later):
        await server.client.register_worker(
            RegisterWorkerRequest(name="w1"), bootstrap_token="new-token-0123456789"
        )
        with pytest.raises(ApiError):
            await server.client.register_worker(
                RegisterWorkerRequest(name="w1"), bootstrap_token="old-token-0123456789"
            )
