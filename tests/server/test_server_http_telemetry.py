"""FastAPI's own OpenTelemetry (a span per HTTP request from a global provider) is kept
when the process had a global tracer provider before the app was made, and off otherwise:
Flux's traces are per execution, and FastAPI's check for a provider on every request costs
the server about 2 % of its CPU per run (docs/decisions.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")

SCRIPT = """
import asyncio, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

spans = InMemorySpanExporter()

def install():
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)

if sys.argv[1] == "before":
    install()
import httpx
from flux_server import ServerOptions, create_app
from flux_server.testing import serve_in_process

app = create_app(ServerOptions(
    database_url=f"sqlite:///{sys.argv[2]}/flux.db",
    home=sys.argv[2] + "/home",
    bootstrap_token="t" * 32,
    encryption_key="test-encryption-key-material-0123456789",
))
if sys.argv[1] == "after":
    install()

async def main():
    async with serve_in_process(app) as transport:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert (await client.get("/health")).status_code == 200
    print(len([s for s in spans.get_finished_spans() if "/health" in s.name]))

asyncio.run(main())
"""


def _health_spans(tmp_path: Path, when: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, when, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_a_global_provider_installed_first_gets_fastapis_request_spans(tmp_path: Path) -> None:
    assert _health_spans(tmp_path, "before") >= 1


def test_without_one_fastapi_does_not_look_for_a_provider_on_each_request(
    tmp_path: Path,
) -> None:
    """A provider installed after the app was made is not looked for (FastAPI's own
    telemetry is off), so no request makes a span."""
    assert _health_spans(tmp_path, "after") == 0
