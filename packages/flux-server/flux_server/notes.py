"""The notes a write sends once it commits: their names, their text, and the one parser.

A transaction carries notes (``tx.notify(note)``); after the commit this process acts on each
(:meth:`flux_server.runtime.Runtime.deliver`), and on PostgreSQL other replicas hear them
through ``NOTIFY`` (:mod:`flux_server.listener`). A note is ``<kind>`` or ``<kind>:<text>``:

========================== =======================================================
``dispatch``               there may be work to offer (new execution, freed capacity)
``exec:<id>:<state>``      the execution changed, to ``state``
``cancel:<worker>:<id>``   the worker holding the execution must stop it
``token:<hash>``           a worker's session token was replaced: forget it
``key:<id>``               an API key was revoked: forget it
``drop:<worker>``          the worker was declared dead: close its stream
``workflows``              a workflow was registered: forget cached versions
``schedules``              a schedule changed: the scheduler re-reads its next wake-up
``progress:<piece>``       a piece of a ``task.progress`` frame for this replica's streams
                           (:mod:`flux_server.progress`; sent to other replicas only)
``missed``                 this replica (re)connected its listener and may have missed
                           notes: forget every cache a note would clear, look for work
                           (delivered to itself by :mod:`flux_server.listener`, never sent)
========================== =======================================================

:data:`HINT_KINDS` are the hot-path notes, hints another replica can afford to miss.
"""

from __future__ import annotations

from typing import NamedTuple

from flux.domain import ExecutionState

__all__ = [
    "CANCEL",
    "DISPATCH",
    "DROP",
    "EXEC",
    "HINT_KINDS",
    "KEY",
    "MISSED",
    "PROGRESS",
    "SCHEDULES",
    "TOKEN",
    "WORKFLOWS",
    "Note",
    "cancel_note",
    "drop_note",
    "exec_note",
    "key_note",
    "parse",
    "token_note",
]

DISPATCH = "dispatch"
EXEC = "exec"
CANCEL = "cancel"
TOKEN = "token"
KEY = "key"
DROP = "drop"
WORKFLOWS = "workflows"
SCHEDULES = "schedules"
PROGRESS = "progress"
MISSED = "missed"

HINT_KINDS = (DISPATCH, f"{EXEC}:", f"{CANCEL}:", f"{PROGRESS}:")
"""Prefixes of the notes that are hints: frequent, and covered by fallbacks when lost (the
dispatcher's sweep, the waiters' recheck, the heartbeat's cancelling list), or ephemeral
(progress, which may be lost by design)."""


class Note(NamedTuple):
    """A parsed note: its kind and up to two fields (``""`` when absent)."""

    kind: str
    subject: str = ""
    """The execution id (``exec``), the worker (``cancel``, ``drop``), the token hash or the
    key id."""
    detail: str = ""
    """The new state (``exec``) or the execution id (``cancel``)."""


def exec_note(execution_id: str, state: ExecutionState) -> str:
    """``exec:<id>:<state>``: the execution changed, to ``state``."""
    return f"{EXEC}:{execution_id}:{state.value}"


def cancel_note(worker: str, execution_id: str) -> str:
    """``cancel:<worker>:<id>``: ``worker`` must stop the execution."""
    return f"{CANCEL}:{worker}:{execution_id}"


def token_note(token_hash: str) -> str:
    """``token:<hash>``: the session token with this hash is no longer valid."""
    return f"{TOKEN}:{token_hash}"


def key_note(key_id: str) -> str:
    """``key:<id>``: the API key with this id was revoked."""
    return f"{KEY}:{key_id}"


def drop_note(worker: str) -> str:
    """``drop:<worker>``: the worker was declared dead."""
    return f"{DROP}:{worker}"


def parse(note: str) -> Note:
    """The kind and fields of ``note``; an unknown kind keeps its text as ``subject``."""
    kind, _, rest = note.partition(":")
    if kind == EXEC:
        # Execution ids may hold ':' (client-chosen ids); a state never does.
        execution_id, colon, state = rest.rpartition(":")
        return Note(kind, execution_id, state) if colon else Note(kind, rest)
    if kind == CANCEL:
        worker, _, execution_id = rest.partition(":")  # worker names hold no ':'
        return Note(kind, worker, execution_id)
    return Note(kind, rest)
