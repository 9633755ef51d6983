"""flux.network.is_loopback: the one rule of "only this machine can reach it" that the server
and flux-mcp apply to bind addresses and Host headers."""

from __future__ import annotations

import pytest
from flux.network import is_loopback


@pytest.mark.parametrize(
    "host",
    ["localhost", "LOCALHOST", " localhost ", "app.localhost", "ip6-localhost",
     "localhost.localdomain", "127.0.0.1", "127.1.2.3", "::1", "[::1]"],
)  # fmt: skip
def test_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "localhost.example.com",
     "my-localhost", "", "[::2]"],
)  # fmt: skip
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)
