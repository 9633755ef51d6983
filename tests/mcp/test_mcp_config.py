"""flux-mcp's settings (the spec's ``[mcp]`` and ``[flux.mcp]`` tables, ``FLUX_MCP__*``, the
command line), the Host and Origin values it accepts, when it refuses to start, and the
messages of the failures no running server here can produce."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from flux.config import Configuration
from flux.errors import ApiError, ProtocolError, UsageError
from flux_mcp import McpConfig
from flux_mcp.__main__ import parse_args
from flux_mcp.errors import tool_message
from flux_mcp.security import allowed_hosts, allowed_origins, check_exposure

from tests.support.cluster import free_port


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An empty working directory, no FLUX_* variables, a fresh configuration."""
    for name in list(os.environ):
        if name.upper().startswith("FLUX_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    Configuration.get().reset()
    yield tmp_path
    Configuration.get().reset()


def test_defaults() -> None:
    config = McpConfig.load()
    assert (config.name, config.host, config.port) == ("flux-workflows", "localhost", 8080)
    assert (config.server_url, config.transport) == ("http://localhost:8000", "streamable-http")
    assert (config.read_only, config.insecure, config.api_key) == (False, False, None)
    assert config.auth == "auto"
    assert (config.allowed_hosts, config.allowed_origins) == ((), ())
    assert config.sync_wait_seconds == 60.0
    assert not config.exposed


def test_the_mcp_table_and_flux_mcp_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flux.toml").write_text(
        textwrap.dedent(
            """
            [mcp]
            name = "from-mcp-table"
            host = "127.0.0.1"
            port = 9001
            server_url = "http://flux:8000"
            transport = "sse"

            [flux.mcp]
            port = 9002
            read_only = true
            allowed_hosts = ["mcp.example.com"]
            """
        )
    )
    monkeypatch.setenv("FLUX_MCP__TRANSPORT", "stdio")
    monkeypatch.setenv("FLUX_MCP__API_KEY", "flux_secret_key")
    monkeypatch.setenv("FLUX_MCP__SYNC_WAIT_SECONDS", "5")
    config = McpConfig.load()
    assert config.name == "from-mcp-table"
    assert (config.host, config.port, config.server_url) == ("127.0.0.1", 9002, "http://flux:8000")
    assert config.transport == "stdio"  # the environment wins over both tables
    assert config.read_only is True
    assert config.allowed_hosts == ("mcp.example.com",)
    assert config.sync_wait_seconds == 5.0
    assert config.api_key == "flux_secret_key"
    assert "flux_secret_key" not in repr(config)
    assert "flux_secret_key" not in repr(Configuration.get().settings)


def test_the_command_line_wins(tmp_path: Path) -> None:
    (tmp_path / "flux.toml").write_text("[mcp]\nport = 9001\nread_only = false\n")
    args = parse_args(
        ["--port", "9100", "--transport", "sse", "--read-only", "--allowed-host", "a.test",
         "--allowed-host", "b.test:*", "--sync-wait-seconds", "2.5"]
    )  # fmt: skip
    config = McpConfig.load(
        port=args.port,
        transport=args.transport,
        read_only=args.read_only,
        allowed_hosts=args.allowed_hosts,
        host=args.host,
        sync_wait_seconds=args.sync_wait_seconds,
    )
    assert (config.port, config.transport, config.read_only) == (9100, "sse", True)
    assert config.allowed_hosts == ("a.test", "b.test:*")
    assert config.host == "localhost" and config.sync_wait_seconds == 2.5
    assert parse_args([]).read_only is None  # not given: the configuration decides


def test_an_unknown_or_invalid_key_names_itself(tmp_path: Path) -> None:
    (tmp_path / "flux.toml").write_text("[mcp]\ntransprot = 'sse'\n")
    with pytest.raises(UsageError, match=r"mcp\.transprot: unknown setting"):
        McpConfig.load()
    (tmp_path / "flux.toml").write_text("[mcp]\ntransport = 'carrier-pigeon'\n")
    Configuration.get().reset()
    with pytest.raises(UsageError, match=r"mcp\.transport"):
        McpConfig.load()


def test_an_invalid_configuration_is_one_line_from_flux_mcp(tmp_path: Path) -> None:
    (tmp_path / "flux.toml").write_text("[mcp]\nport = 'eighty'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUX_")}
    done = subprocess.run(
        [sys.executable, "-m", "flux_mcp"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("flux-mcp: invalid Flux configuration: mcp.port")


def _config(**values: object) -> McpConfig:
    return McpConfig.load(**values)


def test_accepted_hosts_and_origins() -> None:
    local = _config()
    assert allowed_hosts(local) == [
        "127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*",
    ]  # fmt: skip
    origins = allowed_origins(local)
    assert "http://localhost:*" in origins and "https://127.0.0.1" in origins
    assert not any("evil" in o for o in origins)

    named = _config(
        host="mcp.internal",
        allowed_hosts=("proxy.example.com", "10.0.0.5:8080"),
        allowed_origins=("https://app.example.com",),
    )
    hosts = allowed_hosts(named)
    assert {"mcp.internal", "mcp.internal:*", "proxy.example.com", "proxy.example.com:*"} <= set(
        hosts
    )
    assert "10.0.0.5:8080" in hosts and "10.0.0.5:8080:*" not in hosts
    assert {"https://app.example.com", "http://mcp.internal:*"} <= set(allowed_origins(named))

    wildcard = _config(host="0.0.0.0")
    assert allowed_hosts(wildcard) == allowed_hosts(local)
    assert allowed_hosts(_config(host="::1")) == [*allowed_hosts(local)]


def test_when_bearer_tokens_are_required() -> None:
    assert not _config().checks_tokens
    assert _config(auth="on").checks_tokens
    assert _config(host="0.0.0.0").checks_tokens
    assert not _config(host="0.0.0.0", auth="off").checks_tokens
    assert not _config(host="0.0.0.0", auth="on", transport="stdio").checks_tokens
    for host in ("localhost", "127.0.0.1", "127.0.0.2", "::1", "[::1]"):
        assert not _config(host=host).exposed
    for host in ("0.0.0.0", "::", "10.1.2.3", "mcp.example.com"):
        assert _config(host=host).exposed


def test_exposure_without_authentication_is_refused_unless_insecure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for host in ("localhost", "127.0.0.1", "::1"):
        check_exposure(_config(host=host))
    check_exposure(_config(host="0.0.0.0", transport="stdio", auth="off"))  # binds nothing
    for host in ("0.0.0.0", "::", "10.1.2.3", "mcp.example.com"):
        with pytest.raises(UsageError, match="--insecure"):
            check_exposure(_config(host=host, auth="off"))
    with caplog.at_level(logging.WARNING, logger="flux_mcp"):
        check_exposure(_config(host="0.0.0.0", auth="off", insecure=True))
    assert "WITHOUT AUTHENTICATION" in caplog.text


def test_tokens_need_a_flux_server_to_check_them() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(UsageError, match=f"cannot ask it: cannot reach the Flux server at {url}"):
        check_exposure(_config(auth="on", server_url=url))


def test_messages_for_refused_credentials_versions_and_server_failures() -> None:
    refused = tool_message(ApiError("authentication required", 401))
    assert "refused flux-mcp's credentials (HTTP 401)" in refused
    assert "FLUX_MCP__API_KEY" in refused
    assert "HTTP 403" in tool_message(ApiError("role operator needed", 403))
    version = tool_message(ProtocolError("server speaks 2.0, client 1.7"))
    assert "different protocol versions" in version and "2.0" in version
    failed = tool_message(ApiError("database is locked", 503))
    assert "failed (HTTP 503)" in failed and "Try again" in failed


def test_importing_flux_mcp_and_its_help_do_not_load_the_sdk() -> None:
    code = (
        "import json, sys\n"
        "import flux_mcp, flux_mcp.config, flux_mcp.__main__\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'mcp')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []
    helped = subprocess.run(
        [sys.executable, "-m", "flux_mcp", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--read-only" in helped.stdout and "--transport" in helped.stdout
