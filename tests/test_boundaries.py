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
HEAVY = ("fastapi", "sqlalchemy", "typer", "rich", "litellm", "uvicorn", "starlette", "alembic")


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
            "randint",
            "randrange",
            "sleep",
            "uuid4",
        ]
    )
