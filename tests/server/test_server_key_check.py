"""Every server of one database must hold the key its secrets were written with: a replica
with another key refuses to start, in one line, and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
from flux.errors import UsageError
from flux_server.runtime import preflight
from flux_server.store.server_state import key_fingerprint


async def test_a_server_with_another_key_refuses_to_start(options, tmp_path) -> None:
    await preflight(options)  # the first server records its key's fingerprint
    await preflight(options)  # the same key again: fine
    other = replace(options, encryption_key="another-key-material-for-a-second-replica")
    with pytest.raises(UsageError, match="is not the one this database's secrets") as info:
        await preflight(other)
    assert info.value.details["expected"] == key_fingerprint_of(options)
    # A replica with no key configured generates its own file in its home: refused too.
    generated = replace(options, encryption_key=None, home=tmp_path / "replica-home")
    with pytest.raises(UsageError, match="same key"):
        await preflight(generated)


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
