"""``flux workflow ...``: register, inspect, run, resume, check and cancel workflows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from flux.domain import FINISHED_STATES, ExecutionState
from flux.protocol import (
    CancelMode,
    ExecutionFrame,
    ExecutionStatus,
    RunMode,
    TaskProgressFrame,
    WorkflowDetail,
    WorkflowSummary,
    execution_frame_event,
)
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from flux_cli.context import client
from flux_cli.errors import CliError
from flux_cli.inputs import ExecutionArg, parse_json
from flux_cli.output import (
    FormatOption,
    OutputFormat,
    details_table,
    format_time,
    format_value,
    print_json,
    print_json_line,
    show,
    table,
)
from flux_cli.status import print_status

__all__ = ["app", "register"]

app = typer.Typer(
    name="workflow",
    help="Register, inspect, run, resume and cancel workflows on a Flux server.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Workflow name.", show_default=False)]
InputArg = Annotated[
    str | None,
    typer.Argument(
        metavar="INPUT_JSON",
        help='Input as JSON text, e.g. \'{"input": "data"}\' or \'"World"\'; - reads stdin.',
        show_default=False,
    ),
]
ModeOption = Annotated[
    RunMode,
    typer.Option(
        "--mode",
        "-m",
        case_sensitive=False,
        help="async: answer at once; sync: wait until it finishes or pauses; "
        "stream: show each state change, and what its tasks publish as progress, live.",
    ),
]

# Final states a waiting command reports with a non-zero exit code.
_UNSUCCESSFUL = frozenset({ExecutionState.FAILED, ExecutionState.CANCELLED})


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("list")
def list_workflows(ctx: typer.Context, format: FormatOption = OutputFormat.TABLE) -> None:
    """List registered workflows (latest version of each)."""
    with client(ctx) as flux:
        workflows = flux.list_workflows()
    if format is OutputFormat.JSON:
        print_json(workflows)
        return
    if not workflows:
        show("No workflows registered. Add some with: flux workflow register FILE")
        return
    show(_summary_table(workflows))


@app.command("register")
def register_file(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="Python file that defines @workflow functions.",
            show_default=False,
        ),
    ],
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Upload a Python file and register every workflow in it (a new version when changed)."""
    with client(ctx) as flux:
        workflows = flux.register_workflows(file)
    if format is OutputFormat.JSON:
        print_json(workflows)
        return
    show(_summary_table(workflows, title=f"Registered from {file.name}"))


@app.command("show")
def show_workflow(
    ctx: typer.Context, name: NameArg, format: FormatOption = OutputFormat.TABLE
) -> None:
    """Show a workflow: its options, versions and source."""
    with client(ctx) as flux:
        detail = flux.get_workflow(name)
    if format is OutputFormat.JSON:
        print_json(detail)
        return
    _print_detail(detail)


@app.command("run")
def run(
    ctx: typer.Context,
    name: NameArg,
    input: InputArg = None,
    mode: ModeOption = RunMode.ASYNC,
    format: FormatOption = OutputFormat.TABLE,
    execution_id: Annotated[
        str | None,
        typer.Option(
            "--execution-id",
            help="Choose the execution's id; if this workflow already has an execution with "
            "it, report on that one instead of starting another.",
        ),
    ] = None,
) -> None:
    """Run a workflow with JSON input.

    sync and stream exit with code 1 when the execution ends FAILED or CANCELLED.
    """
    value = parse_json(input)
    with client(ctx) as flux:
        if mode is RunMode.STREAM:
            frames = flux.stream(name, value, execution_id=execution_id, progress=True)
            _follow(name, frames, format)
        else:
            status = flux.run(name, value, mode=mode, execution_id=execution_id)
            _report(status, format, waited=mode is RunMode.SYNC)


@app.command("resume")
def resume(
    ctx: typer.Context,
    name: NameArg,
    execution_id: ExecutionArg,
    input: InputArg = None,
    mode: ModeOption = RunMode.ASYNC,
    pause: Annotated[
        str | None,
        typer.Option(
            "--pause",
            "-p",
            help="The waiting pause this answers; needed only when several wait "
            "('flux workflow status' lists them).",
        ),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Resume a paused execution; the waiting pause() returns the JSON input.

    sync and stream exit with code 1 when the execution ends FAILED or CANCELLED.
    """
    value = parse_json(input)
    with client(ctx) as flux:
        if mode is RunMode.STREAM:
            frames = flux.stream_resume(name, execution_id, value, pause=pause, progress=True)
            _follow(name, frames, format)
        else:
            status = flux.resume(name, execution_id, value, mode=mode, pause=pause)
            _report(status, format, waited=mode is RunMode.SYNC)


@app.command("status")
def status(
    ctx: typer.Context,
    name: NameArg,
    execution_id: ExecutionArg,
    detailed: Annotated[
        bool, typer.Option("--detailed", "-d", help="Include the execution's events.")
    ] = False,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show an execution's state, input and output (and with --detailed, its events)."""
    with client(ctx) as flux:
        result = flux.status(name, execution_id, detailed=detailed)
    if format is OutputFormat.JSON:
        print_json(result)
        return
    print_status(result)


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    name: NameArg,
    execution_id: ExecutionArg,
    mode: Annotated[
        CancelMode,
        typer.Option(
            "--mode",
            "-m",
            case_sensitive=False,
            help="async: answer at once (the state may be CANCELLING); "
            "sync: wait until it has stopped.",
        ),
    ] = CancelMode.ASYNC,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Cancel an execution."""
    with client(ctx) as flux:
        result = flux.cancel(name, execution_id, mode=mode)
    if format is OutputFormat.JSON:
        print_json(result)
        return
    print_status(result)


# -- rendering ----------------------------------------------------------------------------------


def _summary_table(workflows: list[WorkflowSummary], title: str | None = None) -> Table:
    rows = (
        (w.name, w.version, w.id, _schedule_text(w.options.schedule), format_time(w.created_at))
        for w in workflows
    )
    columns = ("NAME", "VERSION", "ID", "SCHEDULE", "CREATED")
    return table(columns, rows, title=title, wrap={"SCHEDULE", "CREATED"})


def _schedule_text(schedule: dict[str, object] | None) -> str:
    if not schedule:
        return ""
    for key in ("cron_expression", "expression", "cron"):
        if schedule.get(key):
            return f"cron {schedule[key]}"
    return format_value(schedule, 40)


def _print_detail(detail: WorkflowDetail) -> None:
    options = detail.options
    pairs: list[tuple[str, object]] = [
        ("name", detail.name),
        ("version", detail.version),
        ("id", detail.id),
        ("source hash", detail.source_hash),
        ("created", format_time(detail.created_at)),
    ]
    if options.schedule:
        pairs.append(("schedule", format_value(options.schedule)))
    if options.secret_requests:
        pairs.append(("secrets", ", ".join(options.secret_requests)))
    if options.requests is not None and not options.requests.is_empty():
        pairs.append(("resources", format_value(options.requests.model_dump(exclude_none=True))))
    for key, value in sorted(options.settings.items()):
        pairs.append((key, format_value(value)))
    show(details_table(pairs))
    if detail.versions:
        rows = (
            (v.version, v.id, v.source_hash[:12], format_time(v.created_at))
            for v in detail.versions
        )
        columns = ("VERSION", "ID", "SOURCE HASH", "CREATED")
        show("", table(columns, rows, title="Versions", wrap={"CREATED"}))
    show("", Syntax(detail.source, "python", line_numbers=False, word_wrap=True))


def _report(result: ExecutionStatus, format: OutputFormat, *, waited: bool) -> None:
    if format is OutputFormat.JSON:
        print_json(result)
    else:
        print_status(result)
        if result.state is ExecutionState.PAUSED:
            names = [p.name for p in result.pauses]
            show(Text(_resume_hint(result.workflow_name, result.execution_id, names)))
    if waited:
        _check_outcome(result.execution_id, result.state, result.output)


def _follow(
    name: str, frames: Iterator[ExecutionFrame | TaskProgressFrame], format: OutputFormat
) -> None:
    """Print each frame as it arrives (progress too), then the final output."""
    last: ExecutionFrame | None = None
    for frame in frames:
        if isinstance(frame, TaskProgressFrame):
            _progress(frame, format)
            continue
        event = execution_frame_event(frame.state) or f"workflow.execution.{frame.state.lower()}"
        if format is OutputFormat.JSON:
            print_json_line({"event": event, **frame.model_dump(mode="json")})
        else:
            if last is None:
                show(Text(f"execution {frame.execution_id}"))
            show(Text(f"{format_time(frame.timestamp)}  {event:<30} {frame.state.value}"))
        last = frame
    if last is None:
        raise CliError("the server closed the stream before the execution started")
    if last.state not in FINISHED_STATES and last.state is not ExecutionState.PAUSED:
        raise CliError(
            f"the stream of execution {last.execution_id} ended while it was {last.state.value}; "
            f"check it with: flux workflow status {name} {last.execution_id}"
        )
    if format is OutputFormat.TABLE:
        show(Text(f"output: {format_value(last.output)}"))
        if last.state is ExecutionState.PAUSED:
            show(Text(_resume_hint(name, last.execution_id)))
    _check_outcome(last.execution_id, last.state, last.output)


def _progress(frame: TaskProgressFrame, format: OutputFormat) -> None:
    if format is OutputFormat.JSON:
        print_json_line({"event": frame.EVENT, **frame.model_dump(mode="json")})
        return
    value = frame.value if isinstance(frame.value, str) else format_value(frame.value)
    show(Text(f"{format_time(frame.timestamp)}  {frame.EVENT:<30} {frame.task}: {value}"))


def _resume_hint(name: str, execution_id: str, pauses: list[str] | None = None) -> str:
    command = f"flux workflow resume {name} {execution_id} INPUT_JSON"
    if pauses and len(pauses) > 1:
        return f"paused at {', '.join(pauses)}: answer one with: {command} --pause NAME"
    return f"paused: resume it with: {command}"


def _check_outcome(execution_id: str, state: ExecutionState, output: object) -> None:
    if state in _UNSUCCESSFUL:
        detail = f": {format_value(output, 200)}" if output is not None else ""
        raise CliError(f"execution {execution_id} ended {state.value}{detail}")
