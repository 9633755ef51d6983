"""flux.protocol: the pinned schema, tolerant readers, strict writers, value encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import flux.protocol as protocol
import httpx
import pytest
from flux.domain import EventType, ExecutionEvent, ExecutionState
from flux.errors import ProtocolError, SerializationError
from flux.protocol import (
    CheckpointRequest,
    EventRecord,
    ExecutionCancelledFrame,
    ExecutionFrame,
    ExecutionScheduledFrame,
    OutputRecord,
    ResourceRequest,
    WorkerResources,
)
from pydantic import ValidationError

SNAPSHOT = Path(__file__).parent / "protocol_schema.json"


def test_schema_matches_the_committed_snapshot() -> None:
    current = json.loads(json.dumps(protocol.json_schema(), sort_keys=True))
    pinned = json.loads(SNAPSHOT.read_text())
    assert current == pinned, (
        "the wire protocol changed; if that is deliberate, regenerate the snapshot with "
        "`python -m flux.protocol > tests/sdk/protocol_schema.json` (and bump PROTOCOL_VERSION "
        "when old peers can no longer read it)"
    )


def test_public_surface_exports_every_wire_model() -> None:
    assert len(set(protocol.__all__)) == len(protocol.__all__)
    for name in protocol.__all__:
        assert hasattr(protocol, name), name
    models = set(protocol.json_schema()["models"])
    assert models <= set(protocol.__all__)


def test_readers_ignore_unknown_fields_even_nested() -> None:
    data = {
        "generation": 3,
        "from_the_future": True,
        "events": [
            {
                "id": "e1",
                "type": "TASK_STARTED",
                "source_id": "s",
                "name": "t",
                "time": "2025-01-01T00:00:00Z",
                "new_field": 1,
            }
        ],
    }
    request = CheckpointRequest.model_validate_json(json.dumps(data))
    assert request.generation == 3
    assert request.events[0].id == "e1"
    assert "new_field" not in request.events[0].model_dump()


def test_writers_reject_unknown_fields() -> None:
    with pytest.raises(TypeError, match="evnts"):
        CheckpointRequest(generation=1, evnts=[])  # type: ignore[call-arg]


def test_writers_still_validate_types() -> None:
    with pytest.raises(ValidationError):
        CheckpointRequest(generation="not a number")  # type: ignore[arg-type]


@pytest.mark.parametrize("serializer", ["pkl", "json"])
def test_event_record_round_trips_values_losslessly(serializer: str) -> None:
    value = {"when": datetime(2025, 1, 2, tzinfo=UTC), "pair": (1, 2), "raw": b"\x00"}
    event = ExecutionEvent(EventType.TASK_COMPLETED, "task:abc:0", "task", value, scope="")
    record = EventRecord.from_event(event, serializer)
    wire = EventRecord.model_validate_json(record.model_dump_json())
    back = wire.to_event()
    assert back.value == value
    assert (back.id, back.type, back.time) == (event.id, event.type, event.time)
    assert wire.view == {"when": "2025-01-02T00:00:00+00:00", "pair": [1, 2], "raw": "AA=="}


def test_event_without_value_has_no_bytes() -> None:
    record = EventRecord.from_event(ExecutionEvent(EventType.WORKFLOW_STARTED, "x", "wf"))
    assert record.value is None and record.to_event().value is None


def test_output_record_round_trip() -> None:
    out = OutputRecord.from_value({"a": {1, 2}}, "pkl")
    assert OutputRecord.model_validate_json(out.model_dump_json()).load() == {"a": {1, 2}}
    assert out.view == {"a": [1, 2]}


def test_times_are_read_as_utc() -> None:
    naive = EventRecord.model_validate(
        {"id": "e", "type": "TASK_STARTED", "source_id": "s", "name": "n",
         "time": "2025-01-01T10:00:00"}
    )  # fmt: skip
    assert naive.time == datetime(2025, 1, 1, 10, tzinfo=UTC)
    shifted = naive.model_copy(
        update={"time": datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))}
    )
    again = EventRecord.model_validate_json(shifted.model_dump_json())
    assert again.time.tzinfo == UTC and again.time.hour == 10


@pytest.mark.parametrize(
    ("text", "size"),
    [("4Gi", 4 * 2**30), ("512Mi", 512 * 2**20), ("2GB", 2 * 10**9), ("1024", 1024), (7, 7)],
)
def test_resource_request_sizes(text: str | int, size: int) -> None:
    assert ResourceRequest.model_validate({"memory": text}).memory == size


def test_resource_request_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        ResourceRequest.model_validate({"memory": "lots"})
    with pytest.raises(ValidationError):
        ResourceRequest.model_validate({"cpu": -1})


def test_version_check_names_both_versions() -> None:
    protocol.check_compatible("1.9")
    with pytest.raises(ProtocolError) as info:
        protocol.check_compatible("2.0", peer="server")
    assert "2.0" in str(info.value) and protocol.PROTOCOL_VERSION in str(info.value)
    with pytest.raises(ProtocolError):
        protocol.check_compatible("banana")


def test_worker_frames_parse_by_event_name_and_unknown_is_skipped() -> None:
    offer = protocol.parse_worker_frame(
        "execution.scheduled",
        '{"execution_id": "e", "workflow_name": "w", "workflow_version": 2, "extra": 1}',
    )
    assert offer == ExecutionScheduledFrame(execution_id="e", workflow_name="w", workflow_version=2)
    cancel = protocol.parse_worker_frame("execution.cancelled", '{"execution_id": "e"}')
    assert isinstance(cancel, ExecutionCancelledFrame)
    assert protocol.parse_worker_frame("something.new", "{}") is None


def test_execution_frame_names_follow_the_spec() -> None:
    names = {s.value: protocol.execution_frame_event(s) for s in ExecutionState}
    assert names["RUNNING"] == "workflow.execution.running"
    assert names["PAUSED"] == "workflow.execution.paused"
    assert names["COMPLETED"] == "workflow.execution.completed"
    assert names["FAILED"] == "workflow.execution.failed"
    assert names["CANCELLED"] == "workflow.execution.cancelled"
    assert names["SCHEDULED"] is None
    frame = protocol.parse_execution_frame(
        "workflow.execution.completed",
        '{"execution_id": "a", "state": "COMPLETED", "output": 3, '
        '"timestamp": "2025-01-01T00:00:00Z"}',
    )
    assert isinstance(frame, ExecutionFrame) and frame.output == 3
    assert protocol.parse_execution_frame("keepalive", "{}") is None


def test_worker_resources_defaults_allow_minimal_reports() -> None:
    assert WorkerResources.model_validate({}).gpus == []


def test_a_claim_without_history_columns_has_no_history_to_replay() -> None:
    """A worker replays only from columns; records (``events``, as a one-by-one claim sends
    them) are kept as they came, and ``history()`` says how to ask for columns instead."""
    from flux.protocol import ClaimResponse, EventRecord

    events = [
        ExecutionEvent(EventType.WORKFLOW_STARTED, "e1", "wf", {"a": [1, 2]}),
        ExecutionEvent(EventType.TASK_STARTED, "t:1", "t", None, scope="s"),
    ]
    claim = ClaimResponse(
        execution_id="e1", generation=3, workflow_id="w", workflow_name="wf", workflow_version=1,
        source="", source_hash="h", input=None, state="CLAIMED",
        events=[EventRecord.from_event(e, "pkl") for e in events],
    )  # fmt: skip
    data = json.loads(claim.model_dump_json())
    for read in (ClaimResponse.from_wire(data, decode_history=True), ClaimResponse.from_wire(data)):
        assert [e.id for e in read.events] == [e.id for e in events]
        with pytest.raises(ProtocolError, match="history_format='columns'"):
            read.history()


def _unreadable_value() -> str:
    """A value (base64) of a class whose module this process no longer has."""
    import sys
    import types

    from flux.serialization import b64encode, dumps

    module = types.ModuleType("flux_test_gone")
    exec("class Gone:\n    pass", module.__dict__)
    sys.modules[module.__name__] = module
    try:
        return b64encode(dumps(module.Gone(), "pkl"))
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("decode_history", [True, False])
def test_a_history_that_does_not_read_back_fails_its_claim_not_the_answer(decode_history) -> None:
    """One claim of a batch answer holds a value this worker cannot unpickle: the other
    claims read as usual, and that claim's history raises, naming the event and the cause."""
    from flux.client import FluxClient
    from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, EventRecord, HistoryColumns

    events = [
        ExecutionEvent(EventType.WORKFLOW_STARTED, "e1", "wf", 1),
        ExecutionEvent(EventType.TASK_STARTED, "t:1", "t", None),
        ExecutionEvent(EventType.TASK_COMPLETED, "t:1", "t", 2),
    ]
    records = [EventRecord.from_event(e, "pkl").model_dump(mode="json") for e in events]

    def claim(execution_id: str, unreadable: bool) -> dict:
        rows = [dict(r) for r in records]
        if unreadable:
            rows[2]["value"] = _unreadable_value()
        answer = {
            "execution_id": execution_id, "generation": 1, "workflow_id": "w",
            "workflow_name": "wf", "workflow_version": 1, "source": "", "source_hash": "h",
            "input": None, "state": "CLAIMED", "events": rows,
        }  # fmt: skip
        columns = HistoryColumns(
            ids=[r["id"] for r in rows], types=[r["type"] for r in rows],
            source_ids=[r["source_id"] for r in rows], names=[r["name"] for r in rows],
            scopes=[r["scope"] for r in rows],
            times=[datetime.fromisoformat(r["time"]).timestamp() for r in rows],
            values=[r["value"] for r in rows],
        )  # fmt: skip
        answer["events"], answer["history_columns"] = [], columns.model_dump()
        return answer

    body = {"results": [{"execution_id": "bad", "claim": claim("bad", True)},
                        {"execution_id": "good", "claim": claim("good", False)}]}  # fmt: skip
    answer = httpx.Response(200, json=body, headers={PROTOCOL_HEADER: PROTOCOL_VERSION})
    transport = httpx.MockTransport(lambda request: answer)
    with FluxClient("http://flux.test", transport=transport) as client:
        claimed = client.worker("w1", "token").claims(
            ["bad", "good"], decode_history=decode_history
        )
    bad, good = (r.claim for r in claimed.results)
    assert [e.value for e in good.history()] == [1, None, 2]
    with pytest.raises(SerializationError) as caught:
        bad.history()
    message = str(caught.value)
    assert "event #3 of the history (TASK_COMPLETED of 't:1')" in message, message
    assert "flux_test_gone" in message


def test_claim_history_sent_in_columns_decodes_to_the_same_events() -> None:
    from flux.protocol import ClaimResponse, HistoryColumns
    from flux.serialization import b64encode, dumps

    events = [
        ExecutionEvent(EventType.WORKFLOW_STARTED, "e1", "wf", {"a": [1, 2]}),
        ExecutionEvent(EventType.TASK_STARTED, "t:1", "t", None, scope="s"),
        ExecutionEvent(EventType.TASK_COMPLETED, "t:1", "t", datetime(2026, 1, 2, tzinfo=UTC)),
    ]
    columns = {
        "ids": [e.id for e in events],
        "types": [e.type.value for e in events],
        "source_ids": [e.source_id for e in events],
        "names": [e.name for e in events],
        "scopes": [e.scope for e in events],
        "times": [e.time.timestamp() for e in events],
        "values": [None if e.value is None else b64encode(dumps(e.value)) for e in events],
    }
    data = {
        "execution_id": "e1", "generation": 3, "workflow_id": "w", "workflow_name": "wf",
        "workflow_version": 1, "source": "", "source_hash": "h", "input": None,
        "state": "CLAIMED", "events": [], "history_columns": columns,
    }  # fmt: skip
    fast = ClaimResponse.from_wire(json.loads(json.dumps(data)), decode_history=True)
    validated = ClaimResponse.model_validate(data)  # a reader that does not decode itself
    assert fast.history_columns is None and isinstance(validated.history_columns, HistoryColumns)
    _assert_same_events(fast.history(), validated.history(), events)
    uneven = {**data, "history_columns": {**columns, "names": ["wf"]}}
    with pytest.raises(ProtocolError, match="differ in length"):
        ClaimResponse.from_wire(uneven, decode_history=True).history()
    unknown = {**data, "history_columns": {**columns, "types": ["NOPE", "NOPE", "NOPE"]}}
    with pytest.raises(ProtocolError, match="NOPE"):
        ClaimResponse.from_wire(unknown, decode_history=True).history()
    not_base64 = {**data, "history_columns": {**columns, "values": ["%%%", None, None]}}
    with pytest.raises((ProtocolError, SerializationError)):
        ClaimResponse.from_wire(not_base64, decode_history=True).history()
    no_names = {**data, "history_columns": {k: v for k, v in columns.items() if k != "names"}}
    with pytest.raises(ProtocolError, match="malformed history"):
        ClaimResponse.from_wire(no_names, decode_history=True).history()


def _assert_same_events(*histories: list[ExecutionEvent]) -> None:
    """The histories hold the same events, field for field (the first one's times in UTC)."""

    def fields(e: ExecutionEvent) -> tuple[object, ...]:
        return (e.id, e.type, e.source_id, e.name, e.scope, e.value, e.time)

    for events in zip(*histories, strict=True):
        assert all(fields(e) == fields(events[0]) for e in events)
        assert events[0].time.tzinfo is UTC


def _wire_models() -> list[type]:
    """Every wire model of flux.protocol (imported above)."""
    from flux.protocol._base import WireModel

    found, todo = set(), [WireModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    assert protocol.EventRecord in found
    return sorted(found, key=lambda cls: cls.__qualname__)


def _constructed(model) -> tuple[object, ...]:
    return (
        type(model),
        list(model.__dict__.items()),  # in order
        model.__pydantic_fields_set__,
        model.__pydantic_extra__,
        model.__pydantic_private__,
    )


@pytest.mark.parametrize("cls", _wire_models(), ids=lambda cls: cls.__qualname__)
def test_model_construct_is_pydantics_own(cls) -> None:
    """The wire models' faster model_construct builds exactly what pydantic's builds: with every
    field given (in order and not), with none, with only the first, with an unknown name, and
    with _fields_set."""
    from pydantic import BaseModel

    pydantic_own = BaseModel.model_construct.__func__  # type: ignore[attr-defined]
    names = list(cls.model_fields)
    cases = [
        {name: f"value of {name}" for name in names},
        {name: f"value of {name}" for name in reversed(names)},
        {},
        {name: [name] for name in names[:1]},
        {**{name: i for i, name in enumerate(names)}, "not_a_field": 1},
    ]
    for values in cases:
        assert _constructed(cls.model_construct(**values)) == _constructed(
            pydantic_own(cls, **values)
        ), values
    fields_set = set(names[:1])
    assert _constructed(cls.model_construct(fields_set, **cases[0])) == _constructed(
        pydantic_own(cls, fields_set, **cases[0])
    )
