"""Child processes that live and die together: what ``flux dev`` runs.

Each child gets its own process group, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops the children itself, by pid and in a chosen order (workers drain while the
server is still up). Stopping is terminate, wait up to a grace period, then kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Child", "Supervisor", "describe_exit"]


@dataclass(slots=True)
class Child:
    label: str
    """Names it in messages: ``"the server"``, ``"worker 'dev-worker-1'"``."""
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass(slots=True)
class Supervisor:
    """Starts children and stops all of them, later-started first, stage by stage."""

    grace: float = 10.0
    """Seconds a child gets to exit after SIGTERM before it is killed."""
    children: list[Child] = field(default_factory=list)

    def start(self, label: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """Start ``argv`` with ``env``; stdin is closed, stdout and stderr are shared.

        Raises:
            OSError: the program cannot be started.
        """
        options: dict[str, object] = {}
        if os.name == "posix":
            options["process_group"] = 0
        else:  # pragma: no cover - Windows
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        process = subprocess.Popen(  # type: ignore[call-overload]  # options is **kwargs
            list(argv), env=dict(env), stdin=subprocess.DEVNULL, **options
        )
        child = Child(label, process)
        self.children.append(child)
        return child

    def exited(self) -> Child | None:
        """The first child that has exited, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self, stages: Sequence[Sequence[Child]] | None = None) -> None:
        """Stop every child: by ``stages`` in order (all of a stage at once), then any child not
        named in a stage. Each stage gets :attr:`grace` seconds before its stragglers are killed.
        """
        stages = list(stages or [])
        named = {id(c) for stage in stages for c in stage}
        rest = [c for c in reversed(self.children) if id(c) not in named]
        for stage in [*stages, rest]:
            _stop_stage(stage, self.grace)


def _stop_stage(children: Sequence[Child], grace: float) -> None:
    running = [c for c in children if c.process.poll() is None]
    for child in running:
        _signal(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in running:
        try:
            child.process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            _signal(child, signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
            child.process.wait()


def _signal(child: Child, signum: int) -> None:
    try:
        child.process.send_signal(signum)
    except ProcessLookupError:  # it exited between poll and kill
        pass


def describe_exit(child: Child) -> str:
    """``"the server (pid 12) exited with code 3"`` / ``"... was killed by SIGKILL"``."""
    code = child.process.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{child.label} (pid {child.pid}) was killed by {name}"
    return f"{child.label} (pid {child.pid}) exited with code {code}"
