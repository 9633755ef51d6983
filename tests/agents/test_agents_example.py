"""examples/agent_research.py runs as a user runs it, its model the fake provider."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.agents.fake_provider import FakeProvider, Reply

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_research.py"


def test_the_research_example_runs(provider: FakeProvider, tmp_path: Path) -> None:
    provider.add(
        Reply(text=None, tool_calls=[("look_up", {"topic": "replay"})]),
        Reply(text='{"summary": "A resumed run returns recorded results.", "sources": ["replay"]}'),
    )
    env = {
        **os.environ,
        "FLUX_EXAMPLE_MODEL": "openai/fake",
        "OPENAI_BASE_URL": provider.openai_base,
        "OPENAI_API_KEY": "sk-example",
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "What is replay?"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "  calling look_up({'topic': 'replay'})" in lines
    assert lines[-2].endswith(": COMPLETED")
    assert "A resumed run returns recorded results." in lines[-1]
