"""Helpers shared by the SDK tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

from flux.context import ExecutionContext
from flux.domain import ExecutionEvent


def row_counts(path: Path) -> tuple[int, int]:
    """(executions, events) in the local database; (0, 0) when it does not exist yet."""
    if not path.exists():
        return 0, 0
    with closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "flux_executions" not in tables:
            return 0, 0
        executions = db.execute("SELECT COUNT(*) FROM flux_executions").fetchone()[0]
        events = db.execute("SELECT COUNT(*) FROM flux_events").fetchone()[0]
    return executions, events


def kinds(ctx: ExecutionContext[Any], name: str | None = None) -> list[str]:
    """The event types of ``ctx`` (of one task name when given), as strings."""
    return [e.type.value for e in ctx.events if name is None or e.name == name]


def events_of(ctx: ExecutionContext[Any], type_: str) -> list[ExecutionEvent]:
    return [e for e in ctx.events if e.type.value == type_]


class Scripts:
    """Write small Python programs to a folder and run them with this interpreter.

    ``module`` is written as ``wfmod.py`` next to the scripts, so every process defines the
    same workflows; the environment (the isolated FLUX_* variables) is inherited.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen[str]] = []

    def module(self, source: str) -> None:
        (self.folder / "wfmod.py").write_text(textwrap.dedent(source))

    def write(self, name: str, source: str) -> Path:
        path = self.folder / name
        path.write_text(textwrap.dedent(source))
        return path

    def start(self, name: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(self.folder / name), *args],
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, name: str, *args: str, timeout: float = 60) -> str:
        proc = self.start(name, *args)
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out}\n{err}"
        return out

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
