"""Graph: tasks wired as a directed acyclic graph, with conditional edges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Self

from flux.errors import GraphValidationError

__all__ = ["Graph"]

Condition = Callable[[Any], bool]


class Graph:
    """Build with ``add_node``/``add_edge``/``start_with``/``end_with``; ``await graph(input)``.

    The start node receives the input; a node with one active incoming edge receives that
    predecessor's output, a node with several receives ``{predecessor: output}``. An edge's
    ``condition`` is called with the upstream output; a node runs once all its predecessors
    are settled and at least one incoming edge is active, otherwise it is skipped. Nodes
    whose inputs are ready at the same time run in parallel. The result is the end node's
    output (``None`` when the end node was skipped).

    Raises:
        GraphValidationError: an unknown node, a duplicate, a cycle, no start or end, or an
            end that the start cannot reach. Checked before anything runs.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise GraphValidationError(f"Graph({name!r}): give the graph a non-empty name")
        self.name = name
        self._nodes: dict[str, Callable[[Any], Awaitable[Any]]] = {}
        self._edges: dict[tuple[str, str], Condition | None] = {}
        self._start: str | None = None
        self._end: str | None = None

    def add_node(self, name: str, action: Callable[[Any], Awaitable[Any]]) -> Self:
        if not isinstance(name, str) or not name:
            raise GraphValidationError(f"graph {self.name!r}: node name {name!r} is not a name")
        if name in self._nodes:
            raise GraphValidationError(f"graph {self.name!r} already has a node {name!r}")
        if not callable(action):
            raise GraphValidationError(
                f"graph {self.name!r}: node {name!r} needs a task or async callable, got {action!r}"
            )
        self._nodes[name] = action
        return self

    def add_edge(self, start: str, end: str, condition: Condition | None = None) -> Self:
        for node in (start, end):
            self._require(node)
        if condition is not None and not callable(condition):
            raise GraphValidationError(
                f"graph {self.name!r}: condition of edge {start!r} -> {end!r} must be callable"
            )
        path = self._path(end, start)
        if path is not None:  # refuse it now, not when a workflow already runs the graph
            raise GraphValidationError(
                f"graph {self.name!r}: edge {start!r} -> {end!r} would make a cycle "
                f"({' -> '.join([start, *path])}); a graph must be acyclic"
            )
        self._edges[(start, end)] = condition
        return self

    def _path(self, source: str, target: str) -> list[str] | None:
        """The nodes of a path from ``source`` to ``target`` along the edges, if there is one."""
        parents: dict[str, str | None] = {source: None}
        frontier = [source]
        while frontier:
            node = frontier.pop()
            if node == target:
                path = [node]
                while (parent := parents[path[-1]]) is not None:
                    path.append(parent)
                return path[::-1]
            for a, b in self._edges:
                if a == node and b not in parents:
                    parents[b] = node
                    frontier.append(b)
        return None

    def start_with(self, node: str) -> Self:
        self._require(node)
        self._start = node
        return self

    def end_with(self, node: str) -> Self:
        self._require(node)
        self._end = node
        return self

    def _require(self, node: str) -> None:
        if node not in self._nodes:
            known = ", ".join(sorted(self._nodes)) or "none yet"
            raise GraphValidationError(
                f"graph {self.name!r} has no node {node!r} (nodes: {known}); add_node it first"
            )

    def validate(self) -> list[list[str]]:
        """Check the structure; return the nodes in topological layers."""
        if self._start is None or self._end is None:
            raise GraphValidationError(
                f"graph {self.name!r} needs start_with(...) and end_with(...) before it runs"
            )
        preds = {n: [a for (a, b) in self._edges if b == n] for n in self._nodes}
        indegree = {n: len(p) for n, p in preds.items()}
        layers: list[list[str]] = []
        ready = [n for n in self._nodes if indegree[n] == 0]
        seen = 0
        while ready:
            layers.append(ready)
            seen += len(ready)
            nxt = []
            for node in ready:
                for a, b in self._edges:
                    if a == node:
                        indegree[b] -= 1
                        if indegree[b] == 0:
                            nxt.append(b)
            ready = nxt
        if seen != len(self._nodes):
            cyclic = sorted(n for n, d in indegree.items() if d > 0)
            raise GraphValidationError(
                f"graph {self.name!r} has a cycle through {', '.join(cyclic)}; "
                "a graph must be acyclic"
            )
        if preds[self._start]:
            raise GraphValidationError(
                f"graph {self.name!r}: start node {self._start!r} has incoming edges"
            )
        reachable = {self._start}
        for layer in layers:
            for node in layer:
                if node in reachable:
                    reachable.update(b for (a, b) in self._edges if a == node)
        if self._end not in reachable:
            raise GraphValidationError(
                f"graph {self.name!r}: end node {self._end!r} is not reachable from "
                f"start node {self._start!r}"
            )
        return [[n for n in layer if n in reachable] for layer in layers]

    async def __call__(self, input: Any = None) -> Any:
        from flux.tasks.parallel import parallel

        layers = self.validate()
        outputs: dict[str, Any] = {}
        ran: set[str] = set()
        for layer in layers:
            runnable: list[tuple[str, Any]] = []
            for node in layer:
                if node == self._start:
                    runnable.append((node, input))
                    continue
                active = [
                    a
                    for (a, b), cond in self._edges.items()
                    if b == node and a in ran and (cond is None or cond(outputs[a]))
                ]
                if not active:
                    continue
                arg = outputs[active[0]] if len(active) == 1 else {a: outputs[a] for a in active}
                runnable.append((node, arg))
            results = await parallel(*(self._nodes[n](arg) for n, arg in runnable))
            for (node, _), value in zip(runnable, results, strict=True):
                outputs[node] = value
                ran.add(node)
        return outputs.get(self._end)  # type: ignore[arg-type]
