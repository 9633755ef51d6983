"""A scripted LLM provider on 127.0.0.1: OpenAI-compatible chat completions (JSON and SSE)
and Ollama's chat endpoint (JSON and NDJSON), so that agents run offline against a real HTTP
server, in this process or in a worker process.

Each request takes the next scripted :class:`Reply` (or the ``default`` one when the script is
empty) and is recorded in :attr:`FakeProvider.requests`. A reply can answer text, tool calls,
an HTTP error (429 with ``Retry-After``, 500, 401 ...), a stream cut mid-body, or wait on a
:class:`threading.Event` before answering (``hold``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.waiting import wait_until


@dataclass
class Reply:
    """One scripted answer."""

    text: str | None = "ok"
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """``(tool name, arguments)`` pairs the model asks for."""
    status: int = 200
    error: str = "scripted error"
    headers: dict[str, str] = field(default_factory=dict)
    usage: tuple[int, int] = (10, 5)
    """``(prompt_tokens, completion_tokens)``."""
    cut: bool = False
    """Streamed replies only: close the connection after the first chunk."""
    hold: threading.Event | None = None
    """Answer only once this event is set (the request is recorded before waiting)."""


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))


class FakeProvider:
    """A running fake provider; use as a context manager or call :meth:`close`."""

    def __init__(self, default: Reply | None = None) -> None:
        self.script: deque[Reply] = deque()
        self.default = default or Reply()
        self.requests: list[Request] = []
        self.on_request: Callable[[Request], Reply | None] | None = None
        self._lock = threading.Lock()
        self._ids = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the recorded requests say what happened

            def do_POST(self) -> None:
                provider._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # -- what tests use ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def openai_base(self) -> str:
        """The ``api_base`` of the OpenAI-compatible endpoint."""
        return f"{self.url}/v1"

    def add(self, *replies: Reply) -> FakeProvider:
        """Append ``replies`` to the script."""
        self.script.extend(replies)
        return self

    def chat_requests(self) -> list[Request]:
        """The model calls seen so far (``/api/show`` lookups left out)."""
        with self._lock:
            return [r for r in self.requests if not r.path.endswith("/api/show")]

    def wait_for_requests(self, count: int) -> list[Request]:
        return wait_until(
            lambda: len(self.chat_requests()) >= count and self.chat_requests(),
            what=f"{count} model requests",
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving ------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b"{}"
        body = json.loads(raw or b"{}")
        request = Request(handler.path, body, {k.lower(): v for k, v in handler.headers.items()})
        if handler.path.endswith("/api/show"):
            with self._lock:
                self.requests.append(request)
            _send_json(handler, 200, {"capabilities": ["completion", "tools"], "model_info": {}})
            return
        with self._lock:
            self.requests.append(request)
            self._ids += 1
            number = self._ids
            reply = None
            if self.on_request is not None:
                reply = self.on_request(request)
            if reply is None:
                reply = self.script.popleft() if self.script else self.default
        if reply.hold is not None:
            reply.hold.wait(60)
        if reply.status != 200:
            payload = {"error": {"message": reply.error, "type": "scripted", "code": None}}
            _send_json(handler, reply.status, payload, reply.headers)
            return
        if handler.path.endswith("/api/chat"):
            _ollama(handler, body, reply)
        else:
            _openai(handler, body, reply, number)


def _send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def _openai(
    handler: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply, number: int
) -> None:
    model = body.get("model", "fake")
    prompt, completion = reply.usage
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    calls = [
        {
            "id": f"call_{number}_{i}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }
        for i, (name, arguments) in enumerate(reply.tool_calls)
    ]
    finish = "tool_calls" if calls else "stop"
    base = {"id": f"chatcmpl-{number}", "created": int(time.time()), "model": model}
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": finish}
        _send_json(
            handler,
            200,
            {**base, "object": "chat.completion", "choices": [choice], "usage": usage},
        )
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Connection", "close")
    handler.end_headers()
    chunk = {**base, "object": "chat.completion.chunk"}

    def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        data = json.dumps({**chunk, "choices": choices, **extra})
        handler.wfile.write(f"data: {data}\n\n".encode())
        handler.wfile.flush()

    text = reply.text or ""
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    for piece in pieces:
        send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        if reply.cut:
            handler.close_connection = True
            return
    for i, call in enumerate(calls):
        fn = call["function"]
        half = len(fn["arguments"]) // 2
        first = {"index": i, "id": call["id"], "type": "function"}
        first["function"] = {"name": fn["name"], "arguments": fn["arguments"][:half]}
        send([{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}])
        rest = {"index": i, "function": {"arguments": fn["arguments"][half:]}}
        send([{"index": 0, "delta": {"tool_calls": [rest]}, "finish_reason": None}])
    send([{"index": 0, "delta": {}, "finish_reason": finish}])
    if (body.get("stream_options") or {}).get("include_usage"):
        send([], usage=usage)
    handler.wfile.write(b"data: [DONE]\n\n")
    handler.wfile.flush()
    handler.close_connection = True


def _ollama(handler: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply) -> None:
    prompt, completion = reply.usage
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or ""}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"function": {"name": name, "arguments": arguments}}
            for name, arguments in reply.tool_calls
        ]
    done = {
        "model": body.get("model", "fake"),
        "created_at": "2025-01-01T00:00:00Z",
        "message": message,
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": prompt,
        "eval_count": completion,
    }
    if not body.get("stream"):
        _send_json(handler, 200, done)
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "application/x-ndjson")
    handler.send_header("Connection", "close")
    handler.end_headers()
    text = reply.text or ""
    for i in range(0, len(text), 4):
        frame = {**done, "message": {"role": "assistant", "content": text[i : i + 4]}}
        frame["done"] = False
        handler.wfile.write((json.dumps(frame) + "\n").encode())
    handler.wfile.write(
        (json.dumps({**done, "message": {**message, "content": ""}}) + "\n").encode()
    )
    handler.wfile.flush()
    handler.close_connection = True
