"""The protocol version and the header that carries it.

Every request a Flux client or worker sends carries ``X-Flux-Protocol: <major>.<minor>``; the
server answers with its own version in the same header. Peers with the same major version
understand each other (minor versions only add optional fields, which readers ignore when they
do not know them). A major mismatch is refused with HTTP 426.
"""

from __future__ import annotations

from flux.errors import ProtocolError

__all__ = ["PROTOCOL_HEADER", "PROTOCOL_VERSION", "check_compatible", "major_of"]

PROTOCOL_VERSION = "1.14"
"""1.1 added batched claims (``POST /workers/{name}/claims``); 1.2 the column-wise history a
batched claim may ask for (``history_format="columns"``); 1.3 claims pushed on the worker
stream (``GET /workers/{name}/connect?push=true``, the ``execution.claimed`` frame); 1.4 the
waiting ``pauses`` of an execution's status and ``?pause=<name>`` on a resume; 1.5 executions
read by id (``/executions``: a filtered, cursor-paged list with counts per state, one
execution, its events by page, its resumable stream, a rerun and a bulk cancel); 1.6 schedules
changed in place (``PATCH /schedules/{id}``) and a schedule's own ``catch_up`` policy; 1.7
old finished executions pruned on request (``POST /executions/prune``); 1.8 ``GET /ready``;
1.9 a claim's ``traceparent``, the trace its execution's segments continue; 1.10 progress
(``POST /workers/{name}/progress/{id}``, ``task.progress`` frames on execution streams); 1.11
long-term memory (``/memory/{scope}/{key}``); 1.12 ``?resume_id=`` on a resume (a repeat
with the same id changes nothing); 1.13 API keys (``/admin/keys``), ``GET /auth/whoami`` and
child runs started by a worker (``?parent=`` on ``POST /workflows/{name}/run/{mode}``); 1.14
``POST /workers/{name}/leave``, a stopping worker's goodbye."""
PROTOCOL_HEADER = "X-Flux-Protocol"


def major_of(version: str) -> int:
    """The major part of ``"<major>.<minor>"``.

    Raises:
        ProtocolError: ``version`` is not of that form.
    """
    head = version.strip().split(".", 1)[0]
    if not head.isdigit():
        raise ProtocolError(
            f"unreadable protocol version {version!r}; expected '<major>.<minor>' "
            f"such as {PROTOCOL_VERSION!r}",
            peer_version=version,
            protocol_version=PROTOCOL_VERSION,
        )
    return int(head)


def check_compatible(peer_version: str, *, peer: str = "peer") -> None:
    """Accept ``peer_version`` when its major version equals ours.

    Raises:
        ProtocolError: the major versions differ; the message names both versions.
    """
    if major_of(peer_version) != major_of(PROTOCOL_VERSION):
        raise ProtocolError(
            f"the {peer} speaks Flux protocol {peer_version} but this side speaks "
            f"{PROTOCOL_VERSION}; upgrade the older of the two so their major versions match",
            peer_version=peer_version,
            protocol_version=PROTOCOL_VERSION,
        )
