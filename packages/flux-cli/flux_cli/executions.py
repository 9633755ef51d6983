"""``flux execution ...``: find executions across workflows, and show, follow the events of,
rerun or cancel them by id alone; prune old finished ones."""

from __future__ import annotations

from typing import Annotated

import typer
from flux.domain import EventType, ExecutionState
from flux.protocol import CancelBatchResponse, EventPage, ExecutionList

from flux_cli.context import client
from flux_cli.errors import EXIT_USAGE, CliError
from flux_cli.inputs import ExecutionArg
from flux_cli.output import (
    FormatOption,
    OutputFormat,
    format_time,
    format_value,
    print_json,
    show,
    table,
)
from flux_cli.status import print_status

__all__ = ["app", "register"]

app = typer.Typer(
    name="execution",
    help="Find executions of every workflow; show, rerun or cancel them by id.",
    no_args_is_help=True,
)

_TIME_HELP = "ISO 8601, e.g. 2025-01-31T12:00:00Z (UTC without an offset); exclusive."


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("list")
def list_executions(
    ctx: typer.Context,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's executions.")
    ] = None,
    state: Annotated[
        list[ExecutionState] | None,
        typer.Option(
            "--state", "-s", case_sensitive=False, help="Only executions in this state (repeat)."
        ),
    ] = None,
    worker: Annotated[
        str | None, typer.Option("--worker", help="Only those this worker holds or ran.")
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", help="Only those this schedule (id or name) started."),
    ] = None,
    created_after: Annotated[
        str | None, typer.Option("--created-after", metavar="TIME", help=_TIME_HELP)
    ] = None,
    created_before: Annotated[
        str | None, typer.Option("--created-before", metavar="TIME", help=_TIME_HELP)
    ] = None,
    updated_after: Annotated[
        str | None, typer.Option("--updated-after", metavar="TIME", help=_TIME_HELP)
    ] = None,
    updated_before: Annotated[
        str | None, typer.Option("--updated-before", metavar="TIME", help=_TIME_HELP)
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=500, help="Executions per page.")
    ] = 50,
    cursor: Annotated[
        str | None,
        typer.Option("--cursor", help="Where the previous page ended (its next cursor)."),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """List executions newest first, with how many match in each state.

    Filters combine; the next page is the same command with --cursor.
    """
    with client(ctx) as flux:
        page = flux.list_executions(
            workflow=workflow,
            state=[s.value for s in state or ()],
            worker=worker,
            schedule=schedule,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
            limit=limit,
            cursor=cursor,
        )
    if format is OutputFormat.JSON:
        print_json(page)
        return
    _print_list(page)


@app.command("show")
def show_execution(
    ctx: typer.Context,
    execution_id: ExecutionArg,
    detailed: Annotated[
        bool, typer.Option("--detailed", "-d", help="Include the execution's events.")
    ] = False,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show an execution: its workflow, state, input, output and waiting pauses."""
    with client(ctx) as flux:
        status = flux.get_execution(execution_id, detailed=detailed)
    if format is OutputFormat.JSON:
        print_json(status)
        return
    print_status(status)


@app.command("events")
def events(
    ctx: typer.Context,
    execution_id: ExecutionArg,
    after: Annotated[
        int | None,
        typer.Option("--after", min=0, metavar="POSITION", help="Only events after this one."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="Events per page.")
    ] = 100,
    types: Annotated[
        list[EventType] | None,
        typer.Option("--type", "-t", case_sensitive=False, help="Only this event type (repeat)."),
    ] = None,
    payloads: Annotated[
        bool, typer.Option("--payloads", "-p", help="Include each event's value.")
    ] = False,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """List an execution's events oldest first, a page at a time."""
    with client(ctx) as flux:
        page = flux.execution_events(
            execution_id,
            after=after,
            limit=limit,
            types=[t.value for t in types or ()],
            payloads=payloads,
        )
    if format is OutputFormat.JSON:
        print_json(page)
        return
    _print_events(execution_id, page, payloads)


@app.command("rerun")
def rerun(
    ctx: typer.Context,
    execution_id: ExecutionArg,
    new_id: Annotated[
        str | None,
        typer.Option(
            "--new-id",
            help="Choose the new execution's id; if it exists already, report on it instead "
            "of starting another.",
        ),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Run an execution's workflow (its latest version) again with the same input."""
    with client(ctx) as flux:
        status = flux.rerun(execution_id, new_id=new_id)
    if format is OutputFormat.JSON:
        print_json(status)
        return
    print_status(status)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    execution_ids: Annotated[
        list[str],
        typer.Argument(metavar="EXECUTION_ID...", help="Execution ids.", show_default=False),
    ],
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Cancel executions by id; says what each one did.

    Exits with code 1 when an execution could not be cancelled (unknown, already finished).
    """
    with client(ctx) as flux:
        answer = flux.cancel_executions(execution_ids)
    if format is OutputFormat.JSON:
        print_json(answer)
    else:
        _print_cancelled(answer)
    refused = [r.execution_id for r in answer.results if r.error is not None]
    if refused:
        raise CliError(f"not cancelled: {', '.join(refused)}")


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            help="Age of the last update: a number with s, m, h, d or w (e.g. 30d, 12h).",
            show_default=False,
        ),
    ],
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's executions.")
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Delete finished executions older than --older-than, with their events and schedule
    history. Running, paused and queued executions are never touched."""
    seconds = parse_age(older_than)
    with client(ctx) as flux:
        answer = flux.prune_executions(seconds, workflow=workflow)
    if format is OutputFormat.JSON:
        print_json(answer)
    else:
        show(f"deleted {answer.deleted} finished execution(s)")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_age(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a plain number of seconds.

    Raises:
        CliError: anything else, or an age that is not above zero.
    """
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:]) if raw else None
    number = raw[:-1] if unit is not None else raw
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise CliError(
            f"--older-than {text!r}: give a number with s, m, h, d or w, e.g. 30d", EXIT_USAGE
        ) from None
    if not seconds > 0:
        raise CliError(f"--older-than {text!r}: the age must be above zero", EXIT_USAGE)
    return seconds


# -- rendering ----------------------------------------------------------------------------------


def _print_list(page: ExecutionList) -> None:
    total = sum(page.counts.values())
    if not page.items:
        show("No executions match." if total == 0 else "No more executions.")
    else:
        rows = (
            (
                s.execution_id,
                f"{s.workflow_name} v{s.workflow_version}",
                s.state.value,
                s.worker or "",
                format_time(s.created_at),
                format_time(s.updated_at),
            )
            for s in page.items
        )
        columns = ("EXECUTION", "WORKFLOW", "STATE", "WORKER", "CREATED", "UPDATED")
        show(table(columns, rows, wrap={"CREATED", "UPDATED"}))
    counts = ", ".join(f"{state.value} {n:,}" for state, n in sorted(page.counts.items()))
    show("", f"{total:,} matching" + (f": {counts}" if counts else ""))
    if page.next_cursor is not None:
        show(f"more: repeat the command with --cursor {page.next_cursor}")


def _print_events(execution_id: str, page: EventPage, payloads: bool) -> None:
    if not page.items:
        show(f"No events of execution {execution_id} here.")
        return
    columns = ["POSITION", "TIME", "EVENT", "NAME"] + (["VALUE"] if payloads else [])
    rows = (
        (e.position, format_time(e.time), e.type.value, e.name)
        + ((format_value(e.view, 60),) if payloads else ())
        for e in page.items
    )
    show(table(columns, rows, wrap={"TIME", "NAME", "VALUE"}))
    if page.next_after is not None:
        show(f"more: repeat the command with --after {page.next_after}")


def _print_cancelled(answer: CancelBatchResponse) -> None:
    rows = (
        (
            r.execution_id,
            r.state.value if r.state is not None else "",
            r.error.message if r.error is not None else "",
        )
        for r in answer.results
    )
    show(table(("EXECUTION", "STATE", "WHY NOT"), rows, wrap={"WHY NOT"}))
