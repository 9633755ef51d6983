"""The worker side of the protocol: the history a claim carries, as events or column by
column, read back the same every way."""

from __future__ import annotations

import pytest
from flux.domain import EventType
from flux.serialization import dumps
from server_support import record


async def test_a_claim_decoded_for_replay_has_the_same_history(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    run = await server.client.run("hello", "you")
    claim = await worker.take()
    sent = [
        record(EventType.WORKFLOW_STARTED),
        record(EventType.TASK_STARTED, {"x": 1}, name="t", source_id="t:1"),
        record(EventType.TASK_COMPLETED, [1, "two"], name="t", source_id="t:1"),
    ]
    await worker.checkpoint(run.execution_id, claim.generation, sent)
    await worker.ch.release(run.execution_id, claim.generation)
    await worker.next_offer()
    # The holder of a claim not started yet may claim it again: three readings of one history.
    ids = [run.execution_id]
    plain = (await worker.ch.claims(ids, history_format="events")).results[0].claim
    columns = (await worker.ch.claims(ids)).results[0].claim
    fast = (await worker.ch.claims(ids, decode_history=True)).results[0].claim
    assert len(plain.events) == 3 and plain.history_columns is None
    assert columns.events == [] and columns.history_columns is not None
    assert fast.events == [] and fast.history_columns is None
    recorded = [(e.id, e.type, e.value, e.time) for e in (r.to_event() for r in plain.events)]
    for claim in (columns, fast):
        assert [(e.id, e.type, e.value, e.time) for e in claim.history()] == recorded
    assert [e.value for e in fast.history()] == [None, {"x": 1}, [1, "two"]]
    # On the wire: columns, ids and types as they are, times as seconds since the epoch.
    await worker.ch.release(run.execution_id, fast.generation)
    await worker.next_offer()
    auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
    body = {"execution_ids": ids, "history_format": "columns"}
    raw = await server.http.post("/workers/w1/claims", json=body, headers=auth)
    answer = raw.json()["results"][0]["claim"]
    assert answer["events"] == []
    wire = answer["history_columns"]
    assert wire["ids"] == [e.id for e in plain.events]
    assert wire["types"] == ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED"]
    assert wire["times"] == [e.time.timestamp() for e in plain.events]


async def test_histories_read_column_by_column_match_the_stored_rows(server) -> None:
    """Claimed together, pushed, or claimed one by one, every history reads back the same:
    in log order (not time or id order), with empty values, scopes and any text. On
    PostgreSQL the column form is built by the database, the row form in Python."""
    from datetime import timedelta

    from flux.domain import ExecutionEvent
    from flux.protocol import EventRecord

    await server.register()
    worker = await server.worker("w1", capacity=8)
    runs = [await server.client.run("hello", i) for i in range(3)]
    ids = [r.execution_id for r in runs]
    claims = {c.execution_id: c for c in (await worker.ch.claims(ids)).results}
    later = ExecutionEvent(EventType.WORKFLOW_STARTED, "wf", "hello").time
    edge = {len(dumps(text, "pkl")): text for text in ("x" * k for k in range(20, 60))}
    for n, execution_id in enumerate(ids[:2]):
        events = [
            ExecutionEvent(EventType.WORKFLOW_STARTED, "wf", "hello", time=later, id=f"z{n}"),
            # Logged after the first, stamped before it, with an id that sorts before it.
            ExecutionEvent(
                EventType.TASK_STARTED,
                "t:1",
                "tâche ✓",
                {"k": [1, None, "x\ny"]},
                time=later - timedelta(seconds=5, microseconds=7),
                id=f"a{n}",
                scope="outer:1",
            ),
            ExecutionEvent(EventType.TASK_COMPLETED, "t:1", "tâche ✓", None, id=f"m{n}"),
            # A value whose base64 is longer than a line of PostgreSQL's encode(): no breaks.
            ExecutionEvent(EventType.TASK_COMPLETED, "t:2", "long", "é" * 300, id=f"n{n}"),
            # Either side of where encode() starts breaking lines (57 bytes and longer).
            ExecutionEvent(EventType.TASK_COMPLETED, "t:3", "edge", edge[56], id=f"o{n}"),
            ExecutionEvent(EventType.TASK_COMPLETED, "t:4", "edge", edge[57], id=f"p{n}"),
        ]
        records = [EventRecord.from_event(e, "pkl") for e in events]
        await worker.checkpoint(execution_id, claims[execution_id].claim.generation, records)
    for execution_id in ids:
        await worker.ch.release(execution_id, claims[execution_id].claim.generation)

    def shape(events):
        return [(e.id, e.type, e.source_id, e.name, e.scope, e.value, e.time) for e in events]

    plain = {}  # read from records, one event at a time
    for execution_id in ids:
        [one] = (await worker.ch.claims([execution_id], history_format="events")).results
        plain[execution_id] = shape(record.to_event() for record in one.claim.events)
        await worker.ch.release(execution_id, one.claim.generation)
    assert [i for i, *_ in plain[ids[0]]] == ["z0", "a0", "m0", "n0", "o0", "p0"]
    assert plain[ids[0]][3][5] == "é" * 300
    assert [v for *_, v, _ in plain[ids[0]][4:]] == [edge[56], edge[57]]
    assert plain[ids[1]][1][5] == {"k": [1, None, "x\ny"]}
    auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
    body = {"execution_ids": ids[:1], "history_format": "columns"}
    raw = await server.http.post("/workers/w1/claims", json=body, headers=auth)
    claim = raw.json()["results"][0]["claim"]
    long_value, short, edge_value = claim["history_columns"]["values"][3:]
    assert len(long_value) > 76 and "\n" not in long_value  # past one encode() line, unbroken
    assert len(edge_value) == 76 and "\n" not in edge_value and "\n" not in short
    await worker.ch.release(ids[0], claim["generation"])
    together = (await worker.ch.claims(ids, decode_history=True)).results
    assert {r.execution_id: shape(r.claim.history()) for r in together} == plain
    for r in together:
        await worker.ch.release(r.execution_id, r.claim.generation)
    await worker.close()
    pusher = await server.worker("w2", capacity=8, push=True)
    pushed = [await pusher.next_claimed() for _ in ids]
    assert {c.execution_id: shape(c.history()) for c in pushed} == plain


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_history_aggregated_out_of_order_is_built_again_in_order(
    server, monkeypatch
) -> None:
    """PostgreSQL builds column histories from an ordered subquery, an order it only
    "usually" keeps. Should the aggregates see the rows in another order, the statement's own
    check notices and the history is built again with every aggregate sorting by seq."""
    from flux.domain import ExecutionEvent
    from flux.protocol import EventRecord
    from flux_server.db.raw import Statement
    from flux_server.store import _claims as store

    shuffled = store._READ_HISTORY_COLUMNS.sql["postgresql"].replace(
        "ORDER BY execution_id, seq", "ORDER BY execution_id, seq DESC"
    )
    assert shuffled != store._READ_HISTORY_COLUMNS.sql["postgresql"]
    misordered = Statement(
        "", postgresql="", lists=("ids",), columns=("execution_id", "columns", "in_order")
    )
    misordered.sql["postgresql"] = shuffled
    misordered.row = None  # plain rows, as the real statement's
    monkeypatch.setattr(store, "_READ_HISTORY_COLUMNS", misordered)

    await server.register()
    worker = await server.worker("w1", capacity=4)
    run = await server.client.run("hello", 1)
    claim = await worker.claim(run.execution_id)
    names = [f"step {i}" for i in range(5)]
    records = [EventRecord.from_event(ExecutionEvent(EventType.TASK_STARTED, n, n)) for n in names]
    await worker.checkpoint(run.execution_id, claim.generation, records)
    await worker.ch.release(run.execution_id, claim.generation)
    [again] = (await worker.ch.claims([run.execution_id], decode_history=True)).results
    assert [e.name for e in again.claim.history()] == names
