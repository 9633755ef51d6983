"""The README's examples, run as a newcomer would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import FluxCluster

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_python_example_runs_durably(tmp_path: Path) -> None:
    (code,) = _blocks("python")
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {"FLUX_HOME": str(tmp_path / ".flux"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Hello, World"
    assert (tmp_path / ".flux" / "flux.db").exists()


@pytest.mark.e2e
def test_readme_cli_example_against_a_server(cluster: FluxCluster) -> None:
    cluster.start_worker("readme")
    commands = [
        line.strip()
        for block in _blocks("bash")
        for line in block.splitlines()
        if line.strip().startswith("flux workflow")
    ]
    assert len(commands) == 3
    flux = [sys.executable, "-m", "flux_cli", "--server-url", cluster.url]
    execution_id = None
    for command in commands:
        args = command.split(" ", 1)[1]
        if "<execution_id>" in args:
            assert execution_id is not None
            args = args.replace("<execution_id>", execution_id)
        argv = [*flux, *_split(args)]
        if "--mode sync" in args:
            argv += ["--format", "json"]
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        if "--mode sync" in args:
            import json

            status = json.loads(out.stdout)
            assert status["output"] == "Hello, World"
            execution_id = status["execution_id"]
        if "--detailed" in args:
            assert "WORKFLOW_COMPLETED" in out.stdout


def _split(args: str) -> list[str]:
    import shlex

    return shlex.split(args)


def test_the_readme_links_every_doc():
    docs = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert docs, "the probe found the docs folder"
    missing = [name for name in docs if f"docs/{name}" not in README]
    assert missing == []
