"""Shared fixtures for the SDK tests.

Every test gets its own Flux home and SQLite file under ``tmp_path``, set through ``FLUX_*``
environment variables so that subprocesses started by a test inherit them and a
``Configuration.reload()`` inside a test cannot point it back at a shared database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flux.config import Configuration
from flux.store import LocalStore
from sdk_support import Scripts


@pytest.fixture(autouse=True)
def flux_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated home and database per test; configuration and store caches reset around it."""
    for name in list(os.environ):
        if name.upper().startswith("FLUX_"):
            monkeypatch.delenv(name)
    home = tmp_path / ".flux"
    monkeypatch.setenv("FLUX_HOME", str(home))
    monkeypatch.setenv("FLUX_LOCAL_DATABASE", str(home / "flux.db"))
    monkeypatch.setenv("FLUX_CONFIG_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    Configuration.get().reset()
    _close_stores()
    yield home
    Configuration.get().reset()
    _close_stores()


def _close_stores() -> None:
    LocalStore.close_all()


@pytest.fixture
def db_path(flux_home: Path) -> Path:
    return flux_home / "flux.db"


@pytest.fixture
def store() -> LocalStore:
    from flux.local import open_store

    return open_store()


@pytest.fixture
def scripts(tmp_path: Path) -> Iterator[Scripts]:
    folder = tmp_path / "scripts"
    folder.mkdir()
    helper = Scripts(folder)
    yield helper
    helper.stop_all()
