"""The messages between a worker and its child process: one line each, read back as sent by
the other side's reader, and nothing else accepted."""

from __future__ import annotations

import pytest
from flux_worker import pipe
from pydantic import ValidationError
from worker_support import claim, columns, record

CLAIM = claim(generation=3, history_columns=columns([record("done")]))


def test_each_side_reads_what_the_other_writes() -> None:
    header = pipe.Header(
        claim=CLAIM, home="/h", server_url="http://s", worker_name="w", session_token="t"
    )
    line = pipe.encode(header)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    read = pipe.read_header(line)
    assert read.model_dump() == header.model_dump()  # the decoded history is not compared
    assert [e.value for e in read.claim.history()] == ["done"]
    assert [e.id for e in read.claim.history()] == [e.id for e in CLAIM.history()]
    for child_message in (
        pipe.Events(events=[record(1), record(2)]),
        pipe.Flush(id=1),
        pipe.GetSecrets(id=2, names=["API_KEY"]),
        pipe.NonDeterminism(message="diverged"),
        pipe.Done(),
    ):
        assert pipe.read_child_message(pipe.encode(child_message)) == child_message
    for parent_message in (
        pipe.Flushed(id=1),
        pipe.Secrets(id=2, secrets={"API_KEY": "k"}),
        pipe.Secrets(id=2, error="no secret 'API_KEY'"),
        pipe.Cancel(),
    ):
        assert pipe.read_parent_message(pipe.encode(parent_message)) == parent_message


def test_a_message_of_the_other_direction_or_an_unknown_one_is_refused() -> None:
    with pytest.raises(ValidationError):
        pipe.read_parent_message(pipe.encode(pipe.Done()))
    with pytest.raises(ValidationError):
        pipe.read_child_message(pipe.encode(pipe.Cancel()))
    with pytest.raises(ValidationError):
        pipe.read_child_message(b'{"type": "events", "events": [], "output": null}\n')
