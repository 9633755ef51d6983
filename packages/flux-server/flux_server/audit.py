"""The audit log: who did what to keys, secrets and executions, and when. Never a value.

One JSON line per action on the ``flux.audit`` logger (at INFO), so operators can route it
apart from the server's other logs::

    {"at": "2026-12-07T10:00:00.000000+00:00", "actor": "key 'ci' (1a2b3c4d5e6f)",
     "action": "secret.set", "target": "API_KEY"}

Actions: ``key.create``, ``key.revoke``, ``secret.set``, ``secret.read``, ``secret.delete``,
``execution.cancel``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flux.domain import utcnow

from flux_server.principals import Principal

__all__ = ["audit"]

log = logging.getLogger("flux.audit")


def audit(actor: Principal, action: str, target: str, **details: Any) -> None:
    """Record that ``actor`` did ``action`` to ``target`` (a name or an id, never a value)."""
    if not log.isEnabledFor(logging.INFO):
        return
    entry = {
        "at": utcnow().isoformat(),
        "actor": actor.describe(),
        "action": action,
        "target": target,
        **details,
    }
    log.info(json.dumps(entry, default=str))
