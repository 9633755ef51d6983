"""Every example of docs/agents.md runs, in order, in one namespace, against the fake provider;
the HTML comment before each example scripts what the model answers (``|`` between turns)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.agents.fake_provider import FakeProvider, Reply

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
EXAMPLE = re.compile(r"<!-- model: (.*?) -->\n```python\n(.*?)```", re.S)


def replies(script: str) -> list[Reply]:
    out = []
    for piece in script.split(" | "):
        spec = json.loads(piece)
        out.append(
            Reply(
                text=spec.get("text"),
                tool_calls=[tuple(c) for c in spec.get("tool_calls", [])],
                usage=tuple(spec.get("usage", (10, 5))),
            )
        )
    return out


def test_every_example_runs(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", provider.openai_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs")
    text = DOC.read_text()
    examples = EXAMPLE.findall(text)
    assert len(examples) == len(re.findall(r"```python\n", text)) == 10  # each one scripted
    namespace: dict[str, object] = {"__name__": "agents_doc"}
    for number, (script, code) in enumerate(examples, 1):
        provider.add(*replies(script))
        exec(compile(code, f"docs/agents.md example {number}", "exec"), namespace)
        assert not provider.script, f"example {number} left model answers unused"
