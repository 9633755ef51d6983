"""docs/configuration.md: its example runs and the precedence it states holds."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flux.config import Configuration

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("FLUX_")]:
        monkeypatch.delenv(key)
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    namespace: dict = {}
    try:
        exec(compile(code, str(DOC), "exec"), namespace)
        assert Configuration.get().settings.server_port == 8000
    finally:
        Configuration.get().reset()


def test_precedence_env_over_flux_toml_over_pyproject(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        "[tool.flux]\nserver_port = 7000\nlog_level = 'DEBUG'\n"
    )
    (tmp_path / "flux.toml").write_text("[flux]\nserver_port = 7100\n")
    monkeypatch.setenv("FLUX_SCHEDULING__POLL_INTERVAL", "2.5")
    config = Configuration.get()
    try:
        config.reload()
        assert config.settings.server_port == 7100
        assert config.settings.log_level == "DEBUG"
        assert config.settings.scheduling.poll_interval == 2.5
        monkeypatch.setenv("FLUX_SERVER_PORT", "7200")
        config.reload()
        assert config.settings.server_port == 7200
        config.override(server_port=7300)
        assert config.settings.server_port == 7300
    finally:
        config.reset()
