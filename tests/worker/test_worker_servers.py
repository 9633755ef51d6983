"""A worker's server list: in order of preference, moving on at once while some server is
untried since one last answered, backing off after a full round; the command line takes
the list repeated or separated by commas."""

from __future__ import annotations

import pytest
from flux.client import AsyncFluxClient
from flux.errors import ApiError
from flux_worker.__main__ import main
from flux_worker.servers import ServerList, server_gone


async def test_moves_on_at_once_until_every_server_failed_since_one_answered() -> None:
    servers = ServerList(["http://a", "http://b", "http://c"], AsyncFluxClient)
    assert servers.url == "http://a"
    assert servers.failed() is True and servers.url == "http://b"
    assert servers.failed() is True and servers.url == "http://c"
    assert servers.failed() is False and servers.url == "http://a"  # a full round: back off
    assert servers.failed() is True and servers.url == "http://b"  # a new round
    servers.answered()
    assert servers.failed() is True and servers.url == "http://c"
    assert servers.client.base_url == "http://c"
    assert servers.client is servers.client  # one client per server
    await servers.aclose()


async def test_one_server_backs_off_every_time() -> None:
    servers = ServerList(["http://a"], AsyncFluxClient)
    assert servers.failed() is False and servers.url == "http://a"
    assert servers.failed() is False
    await servers.aclose()


def test_what_counts_as_a_server_gone() -> None:
    assert server_gone(ApiError("unreachable", 0))
    assert server_gone(ApiError("draining", 503))
    assert server_gone(ApiError("bad gateway", 502))
    assert server_gone(ConnectionResetError())
    assert not server_gone(ApiError("fenced", 409))
    assert not server_gone(ApiError("failed", 500))


def test_the_command_line_refuses_a_url_that_is_not_one(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["w", "--token", "t", "--home", str(tmp_path), "--server-url", "http://a,server-b"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "flux-worker: server URL 'server-b' must start with http:// or https:// (several URLs "
        "are separated by commas)\n"
    )
