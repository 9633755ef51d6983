"""Fixtures for the agents' tests: a fake provider on 127.0.0.1 and an isolated Flux home.

No test reaches the network: the model calls go to :class:`FakeProvider`, and litellm reads
its local price list (``LITELLM_LOCAL_MODEL_COST_MAP``), never the remote one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from flux.config import Configuration
from flux.store import LocalStore

from tests.agents.fake_provider import FakeProvider


@pytest.fixture(autouse=True)
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated home and local database per test, and no provider credentials or
    addresses from the machine's environment."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith("FLUX_") or upper.endswith("_API_KEY") or upper.endswith("_BASE_URL"):
            monkeypatch.delenv(name)
        elif upper in ("OPENAI_API_BASE", "OLLAMA_API_BASE"):
            monkeypatch.delenv(name)
    home = tmp_path / ".flux"
    monkeypatch.setenv("FLUX_HOME", str(home))
    monkeypatch.setenv("FLUX_LOCAL_DATABASE", str(home / "flux.db"))
    monkeypatch.setenv("FLUX_CONFIG_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    Configuration.get().reset()
    LocalStore.close_all()
    yield home
    Configuration.get().reset()
    LocalStore.close_all()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake
