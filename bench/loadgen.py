"""A minimal asyncio HTTP/1.1 load generator for the server benchmarks, in the manner of wrk.

Why not httpx: its connection pool spends CPU per request in proportion to the number of pooled
connections (httpcore checks every connection for expiry on each request), so with 64
concurrent sync runs the bench client burnt most of a core. On a small machine that CPU is taken
from the server and worker being measured, and the throughput figures measured the client.

This generator opens ``concurrency`` keep-alive connections and has each one send
``POST /workflows/{name}/run/sync`` back to back until ``n`` requests in all have been sent. It
speaks HTTP/1.1 through the worker's lean exchange (``flux.client._lean``): Content-Length or
chunked bodies, and a reconnect when the server answers ``Connection: close``. Benchmarks
only; no TLS, no proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from flux.client._lean import Closed, exchange
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION

MAX_ERRORS_KEPT = 5


@dataclass
class LoadResult:
    n: int
    completed: int = 0
    failures: int = 0
    errors: list[str] = field(default_factory=list)  # the first few failures, for the report
    elapsed: float = 0.0  # wall seconds
    cpu: float = 0.0  # this process's CPU seconds over the same span
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_share(self) -> float:
        """Client CPU as a fraction of one core."""
        return self.cpu / self.elapsed if self.elapsed else 0.0

    def fail(self, error: str) -> None:
        self.failures += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(error[:500])

    def raise_for_failures(self) -> None:
        if self.failures:
            shown = "\n  ".join(self.errors)
            raise RuntimeError(f"{self.failures} of {self.n} runs did not complete:\n  {shown}")


async def run_many(
    url: str, workflow: str, input: Any, n: int, concurrency: int, timeout: float = 120
) -> LoadResult:
    """Run ``workflow`` ``n`` times in sync mode over ``concurrency`` connections."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = json.dumps(input).encode()
    request = (
        f"POST /workflows/{quote(workflow, safe='')}/run/sync HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{PROTOCOL_HEADER}: {PROTOCOL_VERSION}\r\n\r\n"
    ).encode() + body
    result = LoadResult(n)
    tickets: Iterator[int] = iter(range(n))  # shared: each connection takes the next one

    async def connection() -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for _ in tickets:
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    reused = conn is not None
                    conn = conn or await asyncio.open_connection(host, port)
                    try:
                        status, _, data, keep = await exchange(*conn, request)
                    except Closed:
                        if not reused:
                            raise
                        # The server dropped an idle keep-alive connection: retry on a new one.
                        await _close(conn)
                        conn = await asyncio.open_connection(host, port)
                        status, _, data, keep = await exchange(*conn, request)
            except Exception as e:
                keep = False
                result.fail(f"{type(e).__name__}: {e}")
            else:
                result.latencies_ms.append((time.perf_counter() - t0) * 1e3)
                try:
                    state = json.loads(data).get("state")
                except (ValueError, AttributeError):
                    state = None
                if status == 200 and state == "COMPLETED":
                    result.completed += 1
                else:
                    result.fail(f"HTTP {status}: {data.decode(errors='replace')}")
            if not keep and conn is not None:
                await _close(conn)
                conn = None
        if conn is not None:
            await _close(conn)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(max(1, min(concurrency, n)))))
    result.elapsed = time.perf_counter() - t0
    result.cpu = time.process_time() - cpu0
    return result


async def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    conn[1].close()
    with contextlib.suppress(OSError):
        await conn[1].wait_closed()
