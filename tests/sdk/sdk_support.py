"""Helpers shared by the SDK tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import Any

from flux.context import ExecutionContext
from flux.domain import ExecutionEvent

from tests.support.waiting import wait_until


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


# -- crashes and resumes across real processes ----------------------------------------------------
# A test writes a workflow module (``wfmod.py``, ``COMMON`` and its own workflows) and the
# ``run.py``/``resume.py`` scripts with ``write_scripts``, runs them with this interpreter,
# and counts side effects in files next to the scripts (``bump`` in the module,
# ``side_effects`` here).


COMMON = """
    import asyncio
    import os
    from pathlib import Path

    from flux import ExecutionContext, task, workflow

    HERE = Path(__file__).parent


    def bump(name: str) -> int:
        with open(HERE / f"count.{name}", "a") as fh:
            fh.write("x")
        return len((HERE / f"count.{name}").read_text())


    def mark(name: str, text: str = "") -> None:
        tmp = HERE / f"{name}.tmp"
        tmp.write_text(text)
        tmp.replace(HERE / name)
"""

RUN = """
    import json, signal, sys
    import wfmod

    # Ctrl-C as in a terminal: started from a background job (`make test &`), this process
    # would inherit SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    wf = getattr(wfmod, sys.argv[1])
    arg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    ctx = wf.run(arg)
    print(json.dumps({"id": ctx.execution_id, "state": ctx.state.value, "output": ctx.output},
                     default=repr))
"""

RESUME = """
    import json, sys
    import wfmod

    wf = getattr(wfmod, sys.argv[1])
    arg = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    ctx = wf.run(arg, execution_id=sys.argv[2])
    print(json.dumps({"id": ctx.execution_id, "state": ctx.state.value, "output": ctx.output},
                     default=repr))
"""


def write_scripts(scripts: Scripts, body: str) -> None:
    scripts.module(COMMON + body)
    scripts.write("run.py", RUN)
    scripts.write("resume.py", RESUME)


def side_effects(scripts: Scripts, name: str) -> int:
    path = scripts.folder / f"count.{name}"
    return len(path.read_text()) if path.exists() else 0


def wait_for_marker(scripts: Scripts, proc, name: str) -> None:
    def ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process exited {proc.returncode} early:\n{out}\n{err}")
        return (scripts.folder / name).exists()

    wait_until(ready, timeout=60, what=f"marker {name!r}")


def kill_hard(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)  # reap it: a zombie still answers kill(pid, 0)
    assert proc.returncode == -signal.SIGKILL
