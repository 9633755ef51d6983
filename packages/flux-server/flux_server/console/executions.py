"""``/console/executions``: the listing (filters in the URL, cursor paging, counts per state),
bulk cancel of exactly the executions selected, and a rerun.

The listing reads :mod:`flux_server.store.listing` as ``GET /executions`` does. A bulk cancel
is two steps: the selection goes to a confirmation page by id (``?id=...&id=...``), which
lists those ids and their count and posts exactly them; no filter is ever re-applied, so a
reload can never widen what is cancelled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from flux.domain import FINISHED_STATES, ExecutionState
from flux.errors import NotFoundError, UsageError
from flux.observability import TRACEPARENT
from flux.protocol import ExecutionList, ExecutionStatus

from flux_server.console._render import render_page, see_other
from flux_server.console._route import console_router, runtime_of
from flux_server.store import by_id, listing

__all__ = ["PAGE_SIZE", "router", "safe_back"]

router = console_router()

PAGE_SIZE = 50
MAX_SELECTED = 1000
"""The most executions one bulk cancel takes (``POST /executions/cancel``'s limit)."""
RERUNNABLE = frozenset({ExecutionState.FAILED, ExecutionState.CANCELLED})
_FILTERS = ("workflow", "state", "worker", "created_after", "created_before", "q")


def safe_back(url: str | None, default: str = "/console/executions") -> str:
    """``url`` when it is a console page of this server, else ``default`` (a form's "back"
    field never sends the browser elsewhere)."""
    if url and url.startswith("/console") and not url.startswith("//") and "\\" not in url:
        return url
    return default


def _time(name: str, value: str | None) -> datetime | None:
    """A time from a filter field (``datetime-local`` sends no offset: UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not a time like 2026-01-31T12:00 (UTC)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _states(values: list[str]) -> tuple[ExecutionState, ...]:
    chosen: list[ExecutionState] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                continue
            try:
                state = ExecutionState(part.strip().upper())
            except ValueError:
                names = ", ".join(s.value for s in ExecutionState)
                raise UsageError(f"unknown state {part!r}; use one of {names}") from None
            if state not in chosen:
                chosen.append(state)
    return tuple(chosen)


def filters_of(request: Request) -> tuple[dict[str, Any], listing.ExecutionFilters]:
    """The filters in the page's URL, as the form shows them and as the listing takes them."""
    params = request.query_params
    workflow = params.get("workflow", "")
    states = _states(params.getlist("state"))
    worker = params.get("worker", "").strip()
    after, before = params.get("created_after", ""), params.get("created_before", "")
    shown = {
        "workflow": workflow,
        "states": states,
        "worker": worker,
        "created_after": after,
        "created_before": before,
        "q": params.get("q", "").strip(),
    }
    filters = listing.ExecutionFilters(
        workflow=workflow or None,
        states=states,
        worker=worker or None,
        created_after=_time("created_after", after),
        created_before=_time("created_before", before),
    )
    return shown, filters


def _query(request: Request, **changes: Any) -> str:
    """This page's query string with the filters kept and ``changes`` applied."""
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k in _FILTERS and v]
    for key, value in changes.items():
        pairs = [(k, v) for k, v in pairs if k != key]
        if value is not None:
            pairs += [(key, v) for v in (value if isinstance(value, list) else [value])]
    return urlencode(pairs)


@router.get("/executions")
async def executions_page(request: Request) -> Any:
    runtime = runtime_of(request)
    shown, filters = filters_of(request)
    cursor = request.query_params.get("cursor") or None
    found: ExecutionList
    if shown["q"]:
        found = await _by_id(runtime, shown["q"], filters)
    else:
        after = listing.decode_cursor(cursor, filters) if cursor else None
        found = await listing.page(runtime.db, filters, PAGE_SIZE, after)
    workflows = await runtime.workflows.list()
    here = f"/console/executions?{_query(request)}"
    return render_page(
        request,
        "executions.html",
        nav="executions",
        items=found.items,
        counts=found.counts,
        total=sum(found.counts.values()),
        shown=shown,
        states=list(ExecutionState),
        workflows=[w.name for w in workflows],
        next_url=(
            f"/console/executions?{_query(request, cursor=found.next_cursor)}"
            if found.next_cursor
            else None
        ),
        first_url=f"/console/executions?{_query(request)}" if cursor else None,
        state_url=lambda state: f"/console/executions?{_query(request, state=state)}",
        here=here,
        rerunnable=RERUNNABLE,
        finished=FINISHED_STATES,
    )


async def _by_id(runtime: Any, execution_id: str, filters: listing.ExecutionFilters) -> Any:
    """The one execution with that id, as a page of one (or of none)."""
    try:
        status = await runtime.executions.status(execution_id)
    except NotFoundError:
        return ExecutionList(items=[], counts={})
    return ExecutionList(items=[status], counts={status.state: 1})


@router.get("/executions/cancel")
async def confirm_cancel(request: Request) -> Any:
    """The confirmation of a cancel: exactly the ids selected, read again now."""
    ids = list(dict.fromkeys(i for i in request.query_params.getlist("id") if i))
    back = safe_back(request.query_params.get("back"))
    if not ids:
        return see_other(request, back, "select the executions to cancel first", "error")
    if len(ids) > MAX_SELECTED:
        raise UsageError(f"select at most {MAX_SELECTED} executions to cancel at once")
    runtime = runtime_of(request)
    rows: list[tuple[str, ExecutionStatus | None]] = []
    for execution_id in ids:
        try:
            rows.append((execution_id, await runtime.executions.status(execution_id)))
        except NotFoundError:
            rows.append((execution_id, None))
    return render_page(
        request,
        "cancel.html",
        nav="executions",
        rows=rows,
        ids=ids,
        back=back,
        finished=FINISHED_STATES,
    )


@router.post("/executions/cancel")
async def cancel(request: Request) -> Any:
    form = await request.form()
    ids = [i for i in form.getlist("id") if isinstance(i, str) and i]
    sent_back = form.get("back")
    back = safe_back(sent_back if isinstance(sent_back, str) else None)
    if not ids:
        return see_other(request, back, "no execution was selected: nothing cancelled", "error")
    if len(ids) > MAX_SELECTED:
        raise UsageError(f"select at most {MAX_SELECTED} executions to cancel at once")
    answer = await by_id.cancel_many(runtime_of(request).db, ids)
    done = [r for r in answer.results if r.error is None]
    refused = [r for r in answer.results if r.error is not None]
    text = f"cancel asked for {len(done)} of {len(answer.results)} execution(s)"
    if refused:
        text += "; not cancelled: " + "; ".join(
            f"{r.execution_id} ({r.error.message if r.error else ''})" for r in refused[:10]
        )
    return see_other(request, back, text, "error" if refused and not done else "ok")


@router.post("/executions/{execution_id}/rerun")
async def rerun(execution_id: str, request: Request) -> Any:
    runtime = runtime_of(request)
    name, input = await by_id.run_of(runtime.db, execution_id)
    workflow = await runtime.workflows.latest(name)
    status = await runtime.executions.create(
        workflow, input, caller_trace=request.headers.get(TRACEPARENT)
    )
    return see_other(
        request,
        f"/console/executions/{status.execution_id}",
        f"started {status.execution_id} with the input of {execution_id}",
    )
