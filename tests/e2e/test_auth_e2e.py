"""Authentication with real processes: a server bound to every address requires keys, its
workers run workflows (subworkflows included) with their own credentials, the CLI manages
keys, and turning authentication off there needs ``--insecure``. The examples of
docs/security.md run here too."""

from __future__ import annotations

import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.config import ADMIN_KEY_FILE, Configuration
from flux.errors import ApiError
from flux_cli.app import app
from flux_cli.context import CliState
from typer.testing import CliRunner, Result

from tests.support.cluster import FluxCluster, clean_env, free_port, make_cluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

FLOWS = """
from flux import ExecutionContext, memory, workflow


@workflow
async def child(ctx: ExecutionContext[int]) -> int:
    await memory.put("e2e", "seen", ctx.input)
    return ctx.input * 2


@workflow
async def parent(ctx: ExecutionContext[int]) -> int:
    return await child(ctx.input) + await memory.get("e2e", "seen")
"""


@pytest.fixture
def exposed(tmp_path: Path):
    """A server bound to 0.0.0.0 (authentication ``auto``: on) with worker ``w1``."""
    cluster = make_cluster(tmp_path)
    try:
        cluster.start_server(host="0.0.0.0")
        cluster.start_worker("w1")
        yield cluster
    finally:
        cluster.stop()


def test_an_exposed_server_requires_keys_and_its_workers_still_run(
    exposed: FluxCluster, tmp_path: Path
) -> None:
    key_file = exposed.home / ADMIN_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file.resolve()) in (exposed.home / "server.log").read_text()
    assert key_file.read_text().strip() not in (exposed.home / "server.log").read_text()
    with FluxClient(exposed.url) as anonymous:
        assert anonymous.health().version  # public
        with pytest.raises(ApiError) as refused:
            anonymous.list_workflows()
        assert refused.value.status_code == 401
    (tmp_path / "flows.py").write_text(FLOWS)
    with exposed.client() as admin:
        admin.register_workflows(tmp_path / "flows.py")
        # The worker starts the child and uses memory with its own credentials.
        done = admin.run("parent", 20, mode="sync")
        assert (done.state, done.output) == ("COMPLETED", 60), done


def _flux(cluster: FluxCluster, *args: str, api_key: str | None = None) -> Result:
    env = {"FLUX_HOME": str(cluster.home)}
    if api_key is not None:
        env["FLUX_API_KEY"] = api_key
    Configuration.get().reset()
    state = CliState(server_url=cluster.url)
    result = CliRunner().invoke(app, list(args), obj=state, env=env)
    Configuration.get().reset()
    return result


def test_the_cli_manages_keys_with_the_admin_key_file(exposed: FluxCluster) -> None:
    me = _flux(exposed, "auth", "whoami")
    assert me.exit_code == 0 and "role admin" in me.output, me.output
    created = _flux(exposed, "auth", "key", "create", "ci", "--role", "viewer", "-f", "json")
    assert created.exit_code == 0, created.output
    key = re.search(r'"key": "(flux_[^"]+)"', created.output)
    assert key is not None
    listed = _flux(exposed, "auth", "key", "list")
    assert "ci" in listed.output and "viewer" in listed.output and key.group(1) not in listed.output
    as_viewer = _flux(exposed, "workflow", "list", api_key=key.group(1))
    assert as_viewer.exit_code == 0, as_viewer.output
    refused = _flux(exposed, "secrets", "set", "A", "1", api_key=key.group(1))
    assert refused.exit_code == 1
    assert "needs the admin role" in refused.output and "has viewer" in refused.output
    assert _flux(exposed, "auth", "key", "revoke", "ci").exit_code == 0
    gone = _flux(exposed, "workflow", "list", api_key=key.group(1))
    assert gone.exit_code == 1 and "revoked" in gone.output


def test_the_security_docs_commands_run(exposed: FluxCluster) -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    [block] = re.findall(r"```bash\n(.*?)```", text, re.S)
    api_key = None
    for line in block.splitlines():
        command = line.partition("  #")[0].strip()
        if command.startswith("export FLUX_API_KEY="):
            api_key = (exposed.home / ADMIN_KEY_FILE).read_text().strip()
            continue
        argv = shlex.split(command)
        assert argv[0] == "flux", command
        result = _flux(exposed, *argv[1:], api_key=api_key)
        assert result.exit_code == 0, (command, result.output)


def _server(tmp_path: Path, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    argv = [
        sys.executable, "-m", "flux_server", "--host", "0.0.0.0", "--port", str(free_port()),
        "--database-url", f"sqlite:///{home / 'flux.db'}", *extra,
    ]  # fmt: skip
    variables = clean_env(FLUX_HOME=str(home), **env)
    return subprocess.Popen(
        argv, env=variables, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_authentication_off_on_an_exposed_address_needs_insecure(tmp_path: Path) -> None:
    refused = _server(tmp_path, FLUX_SERVER__AUTH="off")
    output, _ = refused.communicate(timeout=60)
    assert refused.returncode == 2
    lines = output.decode().strip().splitlines()
    assert len(lines) == 1 and "--insecure" in lines[0], lines
    started = _server(tmp_path, "--insecure", FLUX_SERVER__AUTH="off")
    try:
        seen: list[bytes] = []

        def warned() -> bool:
            assert started.stdout is not None
            line = started.stdout.readline()
            assert line, b"".join(seen).decode()
            seen.append(line)
            return b"INSECURE" in line

        wait_until(warned, what="the insecure warning")
        assert not (tmp_path / "home" / ADMIN_KEY_FILE).exists()
    finally:
        started.terminate()  # by pid
        started.communicate(timeout=30)
