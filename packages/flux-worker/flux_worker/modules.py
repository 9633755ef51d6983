"""Workflow source from the server, compiled once per (name, version, source hash)."""

from __future__ import annotations

import sys
import types
from typing import Any

import cloudpickle
from flux.errors import UsageError
from flux.workflow import workflow

__all__ = ["ModuleCache"]


class ModuleCache:
    def __init__(self, limit: int = 256) -> None:
        self._modules: dict[str, types.ModuleType] = {}
        self._workflows: dict[tuple[str, int, str], workflow] = {}
        self.limit = limit

    def load(self, name: str, version: int, source_hash: str, source: str) -> workflow:
        """The workflow object ``name`` defined by ``source``.

        Raises:
            UsageError: the source does not define a workflow called ``name``.
            Exception: whatever executing the module's top level raised.
        """
        key = (name, version, source_hash)
        found = self._workflows.get(key)
        if found is not None:
            return found
        module = self._modules.get(source_hash)
        if module is None:
            module = self._compile(source_hash, source)
        for value in vars(module).values():
            if isinstance(value, workflow) and value.name == name:
                if len(self._workflows) >= self.limit:
                    self._workflows.pop(next(iter(self._workflows)))
                self._workflows[key] = value
                return value
        raise UsageError(f"the registered source of version {version} defines no workflow {name!r}")

    def _compile(self, source_hash: str, source: str) -> types.ModuleType:
        # A stable module name per source, registered for pickling by value: values of classes
        # defined in workflow files replay on any worker, whatever it has loaded before.
        module_name = f"flux_workflows_{source_hash[:16]}"
        module = types.ModuleType(module_name)
        module.__file__ = f"<flux:{source_hash[:16]}>"
        sys.modules[module_name] = module
        try:
            code = compile(source, module.__file__, "exec")
            exec(code, module.__dict__)  # the worker's job: run registered workflow code
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        cloudpickle.register_pickle_by_value(module)
        self._modules[source_hash] = module
        return module

    def hashes(self) -> list[str]:
        """Hashes of the sources compiled here (a batched claim need not send them again)."""
        return list(self._modules)

    def modules(self) -> dict[str, Any]:
        return dict(self._modules)
