"""The separately installed programs the CLI starts: server, worker and MCP server.

The CLI never imports them: it checks that their import package is installed and runs its
``__main__`` (``python -m flux_server ...``) with the interpreter running the CLI.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from flux_cli.errors import CliError

__all__ = ["MCP", "SERVER", "WORKER", "Component"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Component:
    title: str
    """What it is, for messages: ``"the Flux server"``."""
    distribution: str
    """The package to ``pip install``."""
    module: str
    """Its import package; ``python -m <module>`` runs it."""

    def installed(self) -> bool:
        """Whether ``python -m <module>`` can run: the package and its ``__main__`` exist.

        Looks at files only: finding ``<module>.__main__`` through importlib would import the
        package into the CLI's process, which the CLI never does.
        """
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            # ValueError: a module in sys.modules without a spec (or blocked with None).
            return False
        if spec is None:
            return False
        locations = spec.submodule_search_locations or ()
        return any((Path(folder) / "__main__.py").is_file() for folder in locations)

    def require(self, command: str) -> None:
        """Raise unless installed, naming the package to install.

        Raises:
            CliError: ``{command} needs {distribution}: pip install {distribution}``.
        """
        if not self.installed():
            raise CliError(
                f"{command} needs {self.title}, which is not installed: "
                f"pip install {self.distribution}"
            )

    def argv(self, *args: str) -> list[str]:
        """The command line that runs it with ``args``."""
        return [sys.executable, "-m", self.module, *args]


SERVER = Component(title="the Flux server", distribution="flux-server", module="flux_server")
WORKER = Component(title="the Flux worker", distribution="flux-worker", module="flux_worker")
MCP = Component(title="the Flux MCP server", distribution="flux-mcp", module="flux_mcp")
