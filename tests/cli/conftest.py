"""Fixtures for the CLI tests: an isolated configuration, and ``cli(...)`` to run ``flux``
in process (optionally against a :class:`cli_support.FakeServer`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Cli, FakeServer
from e2e_support import STACK_WORKER, WORKFLOWS
from flux.config import Configuration
from flux_cli.app import app
from flux_cli.context import CliState
from typer.testing import CliRunner, Result

from tests.support.cluster import FluxCluster, make_cluster


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No FLUX_* from the outside, no flux.toml but the test's own (in ``tmp_path``)."""
    for name in list(os.environ):
        if name.upper().startswith("FLUX_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLUX_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("FLUX_HOME", str(tmp_path / ".flux"))
    monkeypatch.chdir(tmp_path)
    Configuration.get().reset()
    yield tmp_path
    Configuration.get().reset()


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def cli() -> Cli:
    """``cli("workflow", "list", fake=server, input="...")``: run flux in process."""
    runner = CliRunner()

    def invoke(*args: str, fake: FakeServer | None = None, input: str | None = None) -> Result:
        state = CliState(transport=fake.transport if fake is not None else None)
        return runner.invoke(app, list(args), obj=state, input=input)

    return invoke


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[FluxCluster]:
    """A real server (SQLite) with one worker named ``cli-e2e``, stopped by pid afterwards; the
    test's directory holds ``workflows.py`` (:data:`e2e_support.WORKFLOWS`)."""
    (tmp_path / "workflows.py").write_text(WORKFLOWS)
    running = make_cluster(tmp_path)
    try:
        running.start_server()
        running.start_worker(STACK_WORKER)
        yield running
    finally:
        running.stop()
