"""Package boundaries: what `import flux` loads, who imports whom, and the public surface."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import flux

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ROOT / "packages"
# Import names of every distribution the design names, present in this checkout or not.
KNOWN_IMPORT_NAMES = {"flux", "flux_server", "flux_worker", "flux_cli", "flux_agents", "flux_mcp"}
HEAVY = (
    "fastapi",
    "sqlalchemy",
    "typer",
    "rich",
    "litellm",
    "uvicorn",
    "starlette",
    "alembic",
    "opentelemetry",
    "mcp",
    "prometheus_client",
)


def test_import_flux_loads_no_heavy_dependency():
    code = (
        "import json, sys\n"
        "import flux, flux.tasks, flux.decorators\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = json.loads(out)
    assert "flux" in loaded and "flux.tasks" in loaded  # the probe itself worked
    heavy = sorted(m for m in loaded if m.split(".", 1)[0] in HEAVY)
    assert heavy == [], f"`import flux` loaded {heavy}"
    # The protocol's pydantic models took 400 ms of a 500 ms `import flux` when
    # flux.ResourceRequest was imported eagerly: they load on first use.
    eager = sorted(m for m in loaded if m.startswith(("flux.protocol", "pydantic")))
    assert eager == [], f"`import flux` loaded {eager[:5]}"


def _loaded_modules(code: str, **env: str) -> list[str]:
    """The modules ``code`` has loaded when it ends, run in a fresh interpreter without any
    ``OTEL_*`` variable (plus ``env``)."""
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code += "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**clean, **env},
    ).stdout
    return json.loads(out.splitlines()[-1])


_WORKER = (
    "import flux_worker.child\n"
    "from flux_worker import Worker\n"
    "w = Worker('w', 'http://127.0.0.1:9', 't', home='.')\n"
    "print(w.executions.tracer is not None)\n"
)


def test_a_worker_that_does_not_trace_loads_no_opentelemetry():
    loaded = _loaded_modules(_WORKER)
    assert "flux_worker.worker" in loaded and "flux_worker.child" in loaded
    assert [m for m in loaded if m.startswith("opentelemetry")] == []
    # The same worker traces, and loads it, once the environment asks for it.
    traced = _loaded_modules(_WORKER, OTEL_TRACES_EXPORTER="console")
    assert "opentelemetry.sdk.trace" in traced


def test_a_server_that_does_not_trace_loads_no_opentelemetry_sdk(tmp_path):
    # FastAPI imports OpenTelemetry's API itself (its own telemetry, idle without a provider).
    code = (
        "from flux_server.options import ServerOptions\n"
        "from flux_server.runtime import Runtime\n"
        f"r = Runtime(ServerOptions(database_url='sqlite:///{tmp_path}/f.db'))\n"
        "assert r.executions.tracer is None\n"
    )
    loaded = _loaded_modules(code)
    assert "flux_server.tracing" in loaded
    assert [
        m for m in loaded if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))
    ] == []


def test_a_worker_without_metrics_loads_no_prometheus_client():
    """Metrics are opt-in on a worker (``--metrics-port``): without them, neither the worker
    nor its command line imports prometheus_client."""
    loaded = _loaded_modules("import flux_worker.__main__\n" + _WORKER)
    assert "flux_worker.worker" in loaded and "flux_worker.__main__" in loaded
    assert [m for m in loaded if m.startswith("prometheus_client")] == []


def _import_packages() -> dict[str, Path]:
    """Import name -> folder, for each distribution under packages/."""
    found = {}
    for dist in sorted(PACKAGES.iterdir()):
        for pkg in sorted(dist.iterdir()):
            if (pkg / "__init__.py").is_file():
                found[pkg.name] = pkg
    return found


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".", 1)[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".", 1)[0])
    return names


def test_packages_import_no_sibling_but_flux():
    packages = _import_packages()
    assert {"flux", "flux_server", "flux_worker", "flux_cli"} <= set(packages)
    siblings = KNOWN_IMPORT_NAMES | set(packages)
    offences = []
    for name, folder in packages.items():
        allowed = {name} if name == "flux" else {name, "flux"}
        for source in sorted(folder.rglob("*.py")):
            for imported in sorted(_top_level_imports(source) & (siblings - allowed)):
                offences.append(f"{source.relative_to(ROOT)} imports {imported}")
    assert offences == []


def test_the_import_scan_sees_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "import flux_server.app\nfrom flux_worker import x\nfrom . import y\n"
        "def f():\n    import flux_cli as c\n"
    )
    assert _top_level_imports(source) == {"flux_server", "flux_worker", "flux_cli"}


def test_public_surface_is_pinned():
    assert flux.__all__ == [
        "Configuration",
        "EventType",
        "ExecutionContext",
        "ExecutionError",
        "ExecutionEvent",
        "ExecutionNotFoundError",
        "ExecutionState",
        "ExecutionStateError",
        "FluxError",
        "NonDeterminismError",
        "ResourceRequest",
        "TaskMetadata",
        "UsageError",
        "__version__",
        "call",
        "cron",
        "interval",
        "once",
        "task",
        "workflow",
    ]
    assert flux.__all__ == sorted(flux.__all__)
    for name in flux.__all__:
        assert getattr(flux, name) is not None, name


def test_flux_tasks_surface_is_pinned():
    import flux.tasks

    assert (
        flux.tasks.__all__
        == sorted(flux.tasks.__all__)
        == [
            "Graph",
            "call",
            "choice",
            "now",
            "parallel",
            "pause",
            "pipeline",
            "progress",
            "randint",
            "randrange",
            "sleep",
            "uuid4",
        ]
    )


def _sdk_import_graph() -> dict[str, set[str]]:
    """flux module -> the flux modules it imports anywhere (function bodies too; not under
    ``if TYPE_CHECKING``, nor its own parent packages)."""
    root = PACKAGES / "flux-sdk"
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        graph[name] = {
            m for m in found if m in modules and m != name and not name.startswith(m + ".")
        }
    return graph


def _runtime_nodes(tree: ast.AST):
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            continue
        yield child
        yield from _runtime_nodes(child)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_sdk_has_no_import_circle():
    graph = _sdk_import_graph()
    assert graph["flux.workflow"] >= {"flux.local"}  # the probe sees imports in functions
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
