"""Long-term memory: JSON values by scope and key that outlive executions.

```python
from flux import memory

await memory.put("user:42", "language", "Portuguese")
await memory.get("user:42", "language")          # "Portuguese" (None when absent)
await memory.items("user:42")                    # {"language": "Portuguese"}
await memory.delete("user:42", "language")       # True
```

Local runs keep it in the local store (``.flux/flux.db``); on a server's workers it lives in
the server's database (``/memory/{scope}/{key}``), so every worker sees the same memory.
Inside a workflow each read and write is a recorded task: a replay sees the values the
execution saw then, whatever the memory holds now, and does not write again. Outside a
workflow they read and write the local store directly.

Values are JSON (dicts, lists, strings, numbers, booleans, None) of at most 64 KiB; scopes
and keys are non-empty strings of at most 256 characters, without ``/``.
"""

from __future__ import annotations

import json
from typing import Any

from flux._runtime import Services, current_run
from flux.domain import MAX_MEMORY_BYTES, MAX_MEMORY_NAME
from flux.errors import UsageError
from flux.task import task

__all__ = ["delete", "get", "items", "put"]


@task.with_options(name="memory.get", retry_max_attempts=2, retry_delay=0.5)
async def get(scope: str, key: str, default: Any = None) -> Any:
    """The value under ``scope``/``key``, ``default`` when there is none."""
    _check(scope, key)
    found, value = await _services().memory_get(scope, key)
    return value if found else default


@task.with_options(name="memory.put", retry_max_attempts=2, retry_delay=0.5)
async def put(scope: str, key: str, value: Any) -> None:
    """Keep ``value`` under ``scope``/``key``, replacing what was there.

    Raises:
        UsageError: the value is not JSON or is over 64 KiB; a bad scope or key.
    """
    _check(scope, key)
    await _services().memory_put(scope, key, json_text(value))


@task.with_options(name="memory.delete", retry_max_attempts=2, retry_delay=0.5)
async def delete(scope: str, key: str) -> bool:
    """Forget ``scope``/``key``; whether there was a value."""
    _check(scope, key)
    return await _services().memory_delete(scope, key)


@task.with_options(name="memory.items", retry_max_attempts=2, retry_delay=0.5)
async def items(scope: str) -> dict[str, Any]:
    """Every key of ``scope`` with its value, by key."""
    _check(scope)
    return await _services().memory_items(scope)


def json_text(value: Any) -> str:
    """``value`` as the JSON text memory keeps.

    Raises:
        UsageError: not JSON, or over 64 KiB.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise UsageError(
            f"memory value {value!r:.80}: give JSON (dicts, lists, strings, numbers, booleans, "
            "None)"
        ) from None
    size = len(text.encode())
    if size > MAX_MEMORY_BYTES:
        raise UsageError(
            f"memory value of {size} bytes as JSON is over the limit of {MAX_MEMORY_BYTES} "
            "(64 KiB); keep smaller facts"
        )
    return text


def _check(scope: str, key: str | None = None) -> None:
    for label, name in (("scope", scope), ("key", key)):
        if name is None and label == "key":
            continue
        if not isinstance(name, str) or not name or len(name) > MAX_MEMORY_NAME or "/" in name:
            raise UsageError(
                f"memory {label} {name!r}: give a non-empty string of at most "
                f"{MAX_MEMORY_NAME} characters, without '/'"
            )


def _services() -> Services:
    run = current_run.get()
    if run is not None and run.services is not None:
        return run.services
    from flux.local import LocalServices, open_store

    return LocalServices(open_store())
