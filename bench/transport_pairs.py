"""The worker's CPU per workflow and per task with each HTTP path its client has had, in
interleaved runs (the figures in docs/decisions.md, "The worker's HTTP path").

    python -m bench.transport_pairs [ROUNDS] [sqlite|postgres|both] [VARIANT,...]
    python -m bench.transport_pairs roundtrip [ROUNDS] [VARIANT,...]

``roundtrip``: the client's CPU per small JSON POST (a checkpoint's shape, 400 bytes) to a raw
HTTP/1.1 server in another process that answers at once, two in flight, 20,000 per variant
and round, each variant in a process of its own.

Otherwise each run starts a fresh server, one worker (capacity 64) and database, then runs the
bench's throughput phases with wrk: 2,000 one-task workflows as 64 concurrent sync runs, then
20 workflows of 500 sequential tasks. CPU is the worker's and the server's own counters over each
phase. Every round runs each variant once, the order reversed every other round, so that the
variants of a round share the machine's state. Variants (everything but the client's HTTP
path is this checkout's code):

  side       claims and checkpoints over a hand-written HTTP/1.1 path beside httpx
             (``flux.client._lean`` of SIDE_COMMIT), everything else through httpx
  transport  ``LeanTransport`` of TRANSPORT_COMMIT under ``httpx.AsyncClient.request``
  now        this checkout's client

The older modules are read from git history: run it in a git checkout. wrk must be installed.
"""

from __future__ import annotations

import asyncio
import runpy
import statistics
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from flux.client import AsyncFluxClient

from bench.server import PG_ADMIN, ROOT, Cluster, _drop_pg, _pg_database
from bench.wrk import executable, run_many

SIDE_COMMIT = "e4f27d4"
TRANSPORT_COMMIT = "c5fc77a"
LEAN_MODULE = "packages/flux-sdk/flux/client/_lean.py"
VARIANTS = ("side", "transport", "now")
ONE_TASK_RUNS = 2000
LONG_RUNS, LONG_TASKS = 20, 500
ROUNDTRIPS = 20000


class PairCluster(Cluster):
    """A cluster whose worker's client takes the HTTP path of ``variant``."""

    def __init__(self, home: Path, database_url: str, variant: str, modules: Path) -> None:
        super().__init__(home, database_url)
        self.variant = variant
        self.modules = modules

    def add_worker(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.home / f"{name}.log", "ab")
        cmd = [sys.executable, "-m", "bench.transport_pairs", "--worker", self.variant,
               str(self.modules), name, "--server-url", self.url, "--home", str(self.home),
               "--capacity", "64"]  # fmt: skip
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, cwd=ROOT)
        self.procs.append(proc)
        self._wait(lambda: _connected(self.url, name))
        return proc


def _connected(url: str, name: str) -> bool:
    import httpx

    workers = httpx.get(f"{url}/workers", timeout=1).json()
    return any(w["name"] == name and w["connected"] for w in workers)


# -- in the worker process ---------------------------------------------------------------------


def _load(path: Path, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), module.__dict__)
    return module


def _install(variant: str, modules: Path) -> None:
    """Give AsyncFluxClient the constructor and send of ``variant``."""
    if variant == "now":
        return
    import httpx
    from flux.client import _async
    from flux.client._http import base_headers, check_response, request_headers, unreachable
    from flux.protocol import PROTOCOL_HEADER, check_compatible

    async def send_through_httpx(self: Any, call: Any) -> Any:
        timeout = httpx.Timeout(self._timeout, read=None) if call.wait else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                content=call.content,
                files=call.files,
                headers=request_headers(call.token, call.content_type),
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise unreachable(exc, self._http.base_url) from exc
        check_response(response)
        return call.parse(response.content)

    lean = _load(modules / f"{variant}.py", f"_pairs_{variant}")

    def init(self: Any, base_url: str, *, timeout: float = 30.0, **_: Any) -> None:
        self._timeout = timeout
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        transport = lean.transport_for(base_url, limits) if variant == "transport" else None
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers=base_headers(None),
            transport=transport,
            limits=limits,
        )
        side = variant == "side" and lean.LeanPool.usable(base_url, None)
        self._side = lean.LeanPool(base_url, base_headers(None), timeout) if side else None

    async def send(self: Any, call: Any) -> Any:
        side = self._side
        hot = call.path.endswith(("/claims", "/checkpoints"))
        if side is None or not hot or call.method != "POST" or call.params or call.files:
            return await send_through_httpx(self, call)
        status, headers, body = await side.post(
            call.path, call.content or b"", request_headers(call.token, call.content_type)
        )
        if status >= 400 or PROTOCOL_HEADER.lower() not in headers:
            check_response(httpx.Response(status, headers=headers, content=body))
        else:
            check_compatible(headers[PROTOCOL_HEADER.lower()], peer="server")
        return call.parse(body)

    async def aclose(self: Any) -> None:
        if self._side is not None:
            await self._side.aclose()
        await self._http.aclose()

    cls: Any = _async.AsyncFluxClient
    cls.__init__, cls.send, cls.aclose = init, send, aclose


def _worker(argv: list[str]) -> None:
    variant, modules, *rest = argv
    _install(variant, Path(modules))
    sys.argv = ["flux-worker", *rest]
    runpy.run_module("flux_worker", run_name="__main__", alter_sys=True)


# -- the round trip ----------------------------------------------------------------------------

_ANSWER_BODY = b'{"results":[{"execution_id":"e1","ok":true,"error":null}]}'
_ANSWER = (
    b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 16:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-length: %d\r\ncontent-type: application/json\r\nx-flux-protocol: %s\r\n\r\n%s"
)


async def _serve() -> None:
    """Answer every request at once, on each connection in turn; print the port."""
    from flux.protocol import PROTOCOL_VERSION

    answer = _ANSWER % (len(_ANSWER_BODY), PROTOCOL_VERSION.encode(), _ANSWER_BODY)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                if b"content-length:" in head:
                    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                    await reader.readexactly(length)
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def _roundtrips(argv: list[str]) -> None:
    """In a process of its own: print the client's CPU microseconds per request."""
    import time

    from flux.client import Call

    variant, modules, url = argv
    _install(variant, Path(modules))
    body = b'{"items":[{"execution_id":"e1","generation":1,"events":[]}]}'.ljust(400)
    call = Call("POST", "/workers/w1/checkpoints", bytes, content=body,
                content_type="application/json", token="token")  # fmt: skip

    async def run() -> float:
        async with AsyncFluxClient(url) as client:

            async def loop(n: int) -> None:
                for _ in range(n):
                    await client.send(call)

            await loop(500)
            cpu = time.process_time()
            await asyncio.gather(loop(ROUNDTRIPS // 2), loop(ROUNDTRIPS // 2))
            return (time.process_time() - cpu) / ROUNDTRIPS * 1e6

    print(f"{asyncio.run(run()):.2f}")


def roundtrip(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 7
    variants = argv[1].split(",") if len(argv) > 1 else list(VARIANTS)
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.transport_pairs", "--serve"],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        results: dict[str, list[float]] = {variant: [] for variant in variants}
        with tempfile.TemporaryDirectory() as tmp:
            modules = Path(tmp)
            _old_modules(modules)
            for round_ in range(rounds):
                for variant in variants if round_ % 2 == 0 else variants[::-1]:
                    command = [sys.executable, "-m", "bench.transport_pairs", "--roundtrip",
                               variant, str(modules), url]  # fmt: skip
                    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
                    results[variant].append(float(out.stdout))
                shown = ", ".join(f"{v} {results[v][-1]:.1f}" for v in variants)
                print(f"round {round_ + 1}: {shown} µs", flush=True)
    finally:
        server.kill()
        server.wait()
    print("\n| client | CPU per request (µs) |\n|---|---:|")
    for variant, values in results.items():
        low, high = min(values), max(values)
        print(f"| {variant} | {statistics.median(values):.1f} ({low:.1f}-{high:.1f}) |")


# -- in the driving process --------------------------------------------------------------------


def _old_modules(into: Path) -> None:
    for variant, commit in (("side", SIDE_COMMIT), ("transport", TRANSPORT_COMMIT)):
        source = subprocess.run(
            ["git", "show", f"{commit}:{LEAN_MODULE}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (into / f"{variant}.py").write_text(source)


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _phases(cluster: PairCluster) -> dict[str, float]:
    server, worker = cluster.procs[0].pid, cluster.procs[1].pid
    async with AsyncFluxClient(cluster.url, timeout=120) as client:
        await client.register_workflows(ROOT / "bench" / "workflows.py")
        for _ in range(20):
            await client.run("bench_one", 1, mode="sync")
    figures: dict[str, float] = {}
    phases = (("one", "bench_one", 1, ONE_TASK_RUNS, 64),
              ("long", "bench_tasks", LONG_TASKS, LONG_RUNS, LONG_RUNS))  # fmt: skip
    for phase, workflow, input, n, concurrency in phases:
        worker_cpu, server_cpu = _cpu(worker), _cpu(server)
        load = await run_many(cluster.url, workflow, input, n, concurrency)
        load.raise_for_failures()
        count = n if phase == "one" else n * LONG_TASKS
        figures[f"{phase} worker us"] = (_cpu(worker) - worker_cpu) / count * 1e6
        figures[f"{phase} server us"] = (_cpu(server) - server_cpu) / count * 1e6
        figures[f"{phase} rate"] = count / load.elapsed
    return figures


def _run(variant: str, database: str, modules: Path, pg_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = pg_url if database == "postgres" else f"sqlite:///{home}/flux.db"
        assert url is not None
        cluster = PairCluster(home, url, variant, modules)
        try:
            cluster.start(1)
            return asyncio.run(_phases(cluster))
        finally:
            cluster.stop()


def _run_fresh(variant: str, database: str, modules: Path) -> dict[str, float]:
    """One run on a fresh database; a cluster that does not come up (the machine is shared,
    and busy) is started once more."""
    for attempt in (1, 2):
        pg = _fresh_pg() if database == "postgres" else None
        try:
            return _run(variant, database, modules, pg[0] if pg else None)
        except RuntimeError as exc:
            if attempt == 2 or "did not come up" not in str(exc):
                raise
            print(f"{variant} on {database}: {exc}; starting again", flush=True)
        finally:
            if pg is not None:
                _drop_pg(pg[1])
    raise AssertionError("unreachable")


def _fresh_pg() -> tuple[str, str]:
    created = _pg_database()
    if created is None:
        raise RuntimeError(f"PostgreSQL does not answer at {PG_ADMIN}")
    return created


COLUMNS = (("one worker us", "worker CPU per one-task workflow", "µs"),
           ("long worker us", "worker CPU per task (500-task workflows)", "µs"),
           ("one server us", "server CPU per one-task workflow", "µs"),
           ("long server us", "server CPU per task", "µs"),
           ("one rate", "workflows/s", ""),
           ("long rate", "tasks/s", ""))  # fmt: skip


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 5
    which = argv[1] if len(argv) > 1 else "both"
    variants = argv[2].split(",") if len(argv) > 2 else list(VARIANTS)
    databases = ["sqlite", "postgres"] if which == "both" else [which]
    executable()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        modules = Path(tmp)
        _old_modules(modules)
        for round_ in range(rounds):
            order = variants if round_ % 2 == 0 else variants[::-1]
            for database in databases:
                for variant in order:
                    figures = _run_fresh(variant, database, modules)
                    results.setdefault((database, variant), []).append(figures)
                    shown = ", ".join(f"{k} {v:,.1f}" for k, v in figures.items())
                    print(f"round {round_ + 1} {database} {variant}: {shown}", flush=True)
    header = " | ".join(f"{title}{f' ({unit})' if unit else ''}" for _, title, unit in COLUMNS)
    print(f"\n| database, client | {header} |")
    print("|---|" + "---:|" * len(COLUMNS))
    for (database, variant), runs in results.items():
        cells = []
        for key, _, _ in COLUMNS:
            values = [run[key] for run in runs]
            cells.append(
                f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"
            )
        print(f"| {database}, {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    command, args = sys.argv[1:2], sys.argv[2:]
    if command == ["--worker"]:
        _worker(args)
    elif command == ["--serve"]:
        asyncio.run(_serve())
    elif command == ["--roundtrip"]:
        _roundtrips(args)
    elif command == ["roundtrip"]:
        roundtrip(args)
    else:
        main(sys.argv[1:])
