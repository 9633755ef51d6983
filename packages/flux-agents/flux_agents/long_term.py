"""Long-term memory for agents: facts by key in one scope of :mod:`flux.memory`, offered to the
model as tools and to code as methods.

``Agent(long_term=LongTermMemory("user:42"))`` gives the model three tools, ``remember_fact``,
``recall_facts`` and ``forget_fact``; code reads and writes the same facts with
:meth:`LongTermMemory.remember`, :meth:`~LongTermMemory.recall`, :meth:`~LongTermMemory.facts`
and :meth:`~LongTermMemory.forget`. Every read and write is a recorded task (replay sees the
facts the execution saw), kept in the local store in local runs and by the server on a fleet,
where every worker sees the same memory.
"""

from __future__ import annotations

from typing import Any

from flux.errors import UsageError
from flux.task import task

__all__ = ["LongTermMemory"]


class LongTermMemory:
    """The facts of one ``scope`` (``"user:42"``, ``"project:atlas"``...)."""

    def __init__(self, scope: str) -> None:
        if not isinstance(scope, str) or not scope:
            raise UsageError(f"LongTermMemory({scope!r}): give the scope a non-empty name")
        self.scope = scope

    def __repr__(self) -> str:
        return f"LongTermMemory({self.scope!r})"

    def __flux_identity__(self) -> str:
        return self.scope

    async def remember(self, key: str, value: Any) -> None:
        """Keep ``value`` (JSON, at most 64 KiB) under ``key``, replacing what was there."""
        from flux import memory

        await memory.put(self.scope, key, value)

    async def recall(self, key: str, default: Any = None) -> Any:
        """The fact under ``key``, ``default`` when there is none."""
        from flux import memory

        return await memory.get(self.scope, key, default)

    async def facts(self) -> dict[str, Any]:
        """Every fact of the scope, by key."""
        from flux import memory

        return await memory.items(self.scope)

    async def forget(self, key: str) -> bool:
        """Forget ``key``; whether there was a fact."""
        from flux import memory

        return await memory.delete(self.scope, key)

    def tools(self) -> list[task[Any, Any]]:
        """The tasks the model gets as tools."""
        from flux import memory

        scope = self.scope

        async def remember_fact(key: str, fact: str) -> str:
            """Remember a fact for later conversations, under a short key (e.g. "language");
            a fact already under that key is replaced."""
            await memory.put(scope, key, fact)
            return f"remembered {key!r}"

        async def recall_facts() -> dict[str, Any]:
            """Every fact remembered so far, by key."""
            return await memory.items(scope)

        async def forget_fact(key: str) -> str:
            """Forget the fact under a key."""
            found = await memory.delete(scope, key)
            return f"forgot {key!r}" if found else f"there was no fact {key!r}"

        return [task(fn) for fn in (remember_fact, recall_facts, forget_fact)]
