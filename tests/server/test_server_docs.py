"""Every Python example in the server's docs runs, against an in-process server."""

from __future__ import annotations

import asyncio
import re
import textwrap
from pathlib import Path

import flux.client
import pytest
from flux.serialization import b64decode, loads
from server_support import HELLO

DOCS = Path(__file__).resolve().parents[2] / "docs" / "server.md"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


async def _run(code: str) -> None:
    source = "async def __example__():\n" + textwrap.indent(code, "    ")
    namespace: dict[str, object] = {}
    exec(compile(source, str(DOCS), "exec"), namespace)
    await namespace["__example__"]()  # type: ignore[operator]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_docs_examples_run(server, tmp_path, monkeypatch) -> None:
    blocks = python_blocks(DOCS)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hello.py").write_bytes(HELLO)
    transport = server.transport

    class InProcessClient(flux.client.AsyncFluxClient):
        def __init__(self, base_url: str = "", **kwargs: object) -> None:
            super().__init__("http://flux.test", transport=transport)

    monkeypatch.setattr(flux.client, "AsyncFluxClient", InProcessClient)
    worker = await server.worker()

    async def serve() -> None:
        while True:
            claim = await worker.take(timeout=30)
            await worker.finish(claim, f"Hello, {loads(b64decode(claim.input))}")

    serving = asyncio.create_task(serve())
    try:
        for block in blocks:
            await _run(block)
    finally:
        serving.cancel()


def test_the_docs_name_the_protocol_version_the_server_answers_with() -> None:
    from flux.protocol import PROTOCOL_VERSION

    assert f"`X-Flux-Protocol: {PROTOCOL_VERSION}`" in DOCS.read_text()
    minor = int(PROTOCOL_VERSION.split(".")[1])
    assert f"1.{minor} " in DOCS.read_text()  # and what the latest minor version added
