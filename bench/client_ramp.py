"""The sustained load from Python clients instead of wrk: one process per client, each a
:class:`flux.client.FluxClient` sending sync runs at its share of the rate.

Used by ``bench/sustained.py`` to show what a fleet of Python clients does to the first
minute. All processes start at once; with ``ready_first`` the load starts only once every
client has imported the client library and opened its connection (a ``GET /health``), so the
clients' own start-up lies outside the measured time; without it each client starts sending
as soon as it is ready, while the others are still starting on the same cores.

A client process (``python -m bench.client_ramp URL WORKFLOW RATE SECONDS``) prints
``ready``, reads the start time (a ``time.monotonic()`` value, the same clock in every
process on Linux) from its standard input, sends until SECONDS after it, prints one
``run <sent> <latency>`` per answer (seconds, from the start), then ``done``, and exits when
its standard input closes, so that no client's exit overlaps another's last runs.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

__all__ = ["run_clients"]


async def run_clients(
    url: str, workflow: str, rate: float, clients: int, seconds: float, ready_first: bool
) -> tuple[float, list[tuple[float, float]], list[float], list[str]]:
    """Start ``clients`` processes, each sending ``rate / clients`` runs a second for
    ``seconds``: the start of the load (``time.monotonic()``), (send time, latency) pairs and
    the times at which the clients were ready, in seconds from the start, and the first
    failures."""
    spawned = time.monotonic()
    command = [sys.executable, "-m", "bench.client_ramp", url, workflow, str(rate / clients),
               str(seconds)]  # fmt: skip
    processes = [
        await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(clients)
    ]
    if ready_first:
        ready_at = [await _ready(p) for p in processes]
        start = time.monotonic()
        await asyncio.gather(*(_go(p, start) for p in processes))
    else:
        start = spawned
        await asyncio.gather(*(_go(p, start) for p in processes))
        ready_at = [await _ready(p) for p in processes]
    outputs = await asyncio.gather(*(_lines_until_done(p) for p in processes))
    # Only now may the clients exit: exits that overlapped the last runs would slow them.
    for p in processes:
        assert p.stdin is not None
        p.stdin.close()
    codes = await asyncio.gather(*(p.wait() for p in processes))
    runs: list[tuple[float, float]] = []
    problems: list[str] = []
    for code, lines in zip(codes, outputs, strict=True):
        for line in lines:
            kind, _, rest = line.partition(" ")
            if kind == "run":
                sent, latency = rest.split()
                runs.append((float(sent), float(latency)))
            elif len(problems) < 5:
                problems.append(line)
        if code and len(problems) < 5:
            problems.append(f"a client exited with {code}")
    return start, runs, [t - start for t in ready_at], problems


async def _ready(process: asyncio.subprocess.Process) -> float:
    assert process.stdout is not None
    line = await process.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"a client did not start: {line!r}")
    return time.monotonic()


async def _go(process: asyncio.subprocess.Process, start: float) -> None:
    assert process.stdin is not None
    process.stdin.write(f"{start!r}\n".encode())
    await process.stdin.drain()


async def _lines_until_done(process: asyncio.subprocess.Process) -> list[str]:
    """The client's lines up to its ``done`` (all of them if it ends without one)."""
    assert process.stdout is not None
    lines = []
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line == "done":
            break
        lines.append(line)
    return lines


def _client(url: str, workflow: str, rate: float, seconds: float) -> None:
    from flux.client import FluxClient

    with FluxClient(url, timeout=60) as client:
        client.health()
        print("ready", flush=True)
        start = float(sys.stdin.readline())
        end = start + seconds
        interval = 1 / rate
        # Each client starts at a random point of its first interval, so the clients' sends
        # spread over time rather than arriving in step.
        slot = max(time.monotonic(), start) + random.uniform(0, interval)
        while slot < end:
            pause = slot - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sent = time.monotonic()
            status = client.run(workflow, 1, mode="sync")
            latency = time.monotonic() - sent
            if status.state != "COMPLETED":
                print(f"state {status.state}", flush=True)
            print(f"run {sent - start:.6f} {latency:.6f}")
            # A late answer brings no burst after it: the next slot is never in the past.
            slot = max(slot + interval, time.monotonic())
    print("done", flush=True)
    sys.stdin.readline()  # exit once every client is done (the parent closes our stdin)


if __name__ == "__main__":
    _url, _workflow, _rate, _seconds = sys.argv[1:5]
    _client(_url, _workflow, float(_rate), float(_seconds))
