"""Every example of docs/scheduling.md and docs/secrets.md runs, in order, against a real
server and worker.

- ```` ```python ```` blocks run in this process; one whose first line is ``# NAME.py`` is a file
  the following examples use, so it is written to the working directory instead.
- ```` ```bash ```` blocks are ``flux`` commands (``\\`` continues a line), run in process with
  the CLI; a trailing ``# exit code N`` gives the expected exit code (default 0).
- ```` ```http ```` blocks are ``METHOD PATH`` and an optional JSON body; they must answer 2xx.

``http://localhost:8000`` in an example means the test's server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from flux.config import Configuration
from flux_cli.app import app
from flux_cli.context import CliState
from typer.testing import CliRunner

from tests.support.cluster import FluxCluster, make_cluster

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "scheduling.md", ROOT / "docs" / "secrets.md"]
LOCAL_URL = "http://localhost:8000"


@dataclass(frozen=True)
class Block:
    where: str
    language: str
    text: str


def blocks(path: Path) -> list[Block]:
    found = []
    lines = path.read_text().splitlines()
    language: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        fence = re.fullmatch(r"```(\w*)", line.strip())
        if language is None and fence:
            language, body, start = fence.group(1), [], number + 1
        elif language is not None and line.strip() == "```":
            if language in ("python", "bash", "http"):
                found.append(Block(f"{path.name}:{start}", language, "\n".join(body) + "\n"))
            language = None
        elif language is not None:
            body.append(line)
    return found


def commands(block: Block) -> list[tuple[list[str], int]]:
    """The ``flux`` command lines of a bash block with their expected exit codes."""
    joined = re.sub(r"\\\n\s*", " ", block.text)
    found = []
    for line in joined.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        command, _, comment = text.partition("  #")
        match = re.match(r"\s*exit code (\d+)", comment)
        argv = shlex.split(command)
        assert argv[0] == "flux", f"{block.where}: not a flux command: {command}"
        found.append((argv[1:], int(match.group(1)) if match else 0))
    return found


def test_docs_have_examples_of_every_endpoint_and_command() -> None:
    texts = [b.text for path in DOCS for b in blocks(path)]
    joined = "\n".join(texts)
    for command in ("list", "show", "create", "pause", "resume", "history", "delete"):
        assert f"flux schedule {command}" in joined, command
    for command in ("list", "set", "get", "remove"):
        assert f"flux secrets {command}" in joined, command
    for request in (
        "POST /schedules\n",
        "GET /schedules?",
        "/pause",
        "/resume",
        "/history?limit=",
        "DELETE /schedules/",
        "POST /admin/secrets",
        "GET /admin/secrets\n",
        "GET /admin/secrets/",
        "DELETE /admin/secrets/",
    ):
        assert request in joined, request


@pytest.fixture
def running(tmp_path: Path) -> Iterator[FluxCluster]:
    cluster = make_cluster(tmp_path)
    try:
        cluster.start_server()
        cluster.start_worker("docs-worker")
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_examples_run_in_order(
    doc: Path, running: FluxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name in [n for n in os.environ if n.startswith("FLUX_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLUX_CONFIG_DIR", str(workdir))
    monkeypatch.setenv("FLUX_SERVER_HOST", "127.0.0.1")
    monkeypatch.setenv("FLUX_SERVER_PORT", str(running.port))
    Configuration.get().reset()
    runner = CliRunner()
    ran = {"python": 0, "bash": 0, "http": 0}
    try:
        for block in blocks(doc):
            ran[block.language] += 1
            text = block.text.replace(LOCAL_URL, running.url)
            if block.language == "python":
                first = text.splitlines()[0]
                if re.fullmatch(r"# [\w.]+\.py", first):
                    (workdir / first[2:]).write_text(text)
                else:
                    exec(compile(text, block.where, "exec"), {"__name__": "__docs__"})
            elif block.language == "bash":
                for args, code in commands(block):
                    result = runner.invoke(app, args, obj=CliState())
                    assert result.exit_code == code, f"{block.where}: {args}: {result.output}"
                    if code:
                        assert len(result.stderr.splitlines()) == 1, result.stderr
            else:
                head, _, body = text.partition("\n")
                method, path = head.split()
                content = json.loads(body) if body.strip() else None
                answer = httpx.request(method, running.url + path, json=content, timeout=10)
                assert answer.is_success, f"{block.where}: {answer.status_code} {answer.text}"
    except BaseException:
        print(running.tail())
        raise
    finally:
        Configuration.get().reset()
    assert all(ran.values()), ran
