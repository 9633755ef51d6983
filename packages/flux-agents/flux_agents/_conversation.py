"""The messages of one run and their rolling digest.

A model turn is recorded with the digest, not the messages: its recorded arguments stay the
same size however long the conversation grows, and replay still notices a conversation that
differs from the one recorded (the turn's identity changes with it).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["Conversation"]


class Conversation:
    __slots__ = ("digest", "messages")

    def __init__(self, seed: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.digest = seed

    def add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        text = json.dumps(message, sort_keys=True, ensure_ascii=False, default=str)
        self.digest = hashlib.sha256(f"{self.digest}\x00{text}".encode()).hexdigest()[:16]

    def extend(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.add(message)
