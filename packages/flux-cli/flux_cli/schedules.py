"""``flux schedule ...``: create, list, show, update, pause, resume and delete schedules, and see
their history. ``SCHEDULE`` arguments take a schedule's id or its name."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from flux.errors import FluxError, UsageError
from flux.protocol import ScheduleInfo, ScheduleRun
from flux.schedules import Schedule, cron, interval, schedule_from_config

from flux_cli.context import client
from flux_cli.inputs import parse_json
from flux_cli.output import (
    FormatOption,
    OutputFormat,
    details_table,
    format_time,
    format_value,
    print_json,
    show,
    table,
)

__all__ = ["app", "build_schedule", "register"]

app = typer.Typer(
    name="schedule",
    help="Run workflows on cron, interval or one-time schedules, and see what each run did.",
    no_args_is_help=True,
)

ScheduleArg = Annotated[
    str,
    typer.Argument(metavar="SCHEDULE", help="Schedule id or name.", show_default=False),
]


class CatchUp(StrEnum):
    ONCE = "once"
    SKIP = "skip"
    DEFAULT = "default"


_CronOption = Annotated[
    str | None,
    typer.Option(
        "--cron", metavar="EXPR", help="Cron expression, e.g. '0 9 * * MON-FRI' or '@daily'."
    ),
]
_SecondsOption = Annotated[
    float | None, typer.Option("--interval-seconds", metavar="N", help="Run every N seconds.")
]
_MinutesOption = Annotated[
    float | None, typer.Option("--interval-minutes", metavar="N", help="Run every N minutes.")
]
_HoursOption = Annotated[
    float | None, typer.Option("--interval-hours", metavar="N", help="Run every N hours.")
]
_DaysOption = Annotated[
    float | None, typer.Option("--interval-days", metavar="N", help="Run every N days.")
]
_OnceOption = Annotated[
    str | None,
    typer.Option("--once", metavar="ISO", help="Run once at this time (ISO 8601)."),
]
_DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="What the schedule is for.")
]


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("list")
def list_schedules(
    ctx: typer.Context,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="Only this workflow's schedules (name or id)."),
    ] = None,
    active_only: Annotated[
        bool, typer.Option("--active-only", help="Leave out paused and completed schedules.")
    ] = False,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """List schedules with their next run and how their runs went."""
    with client(ctx) as flux:
        schedules = flux.list_schedules(workflow, active_only=active_only)
    if format is OutputFormat.JSON:
        print_json(schedules)
        return
    if not schedules:
        show("No schedules. Create one with: flux schedule create WORKFLOW NAME --cron EXPR")
        return
    columns = ("NAME", "WORKFLOW", "SCHEDULE", "STATE", "NEXT RUN", "RUNS", "FAILURES", "ID")
    rows = (
        (
            s.name,
            s.workflow_name,
            describe(s.schedule_config),
            s.state.value,
            format_time(s.next_run_at),
            s.run_count,
            s.failure_count,
            s.id,
        )
        for s in schedules
    )
    show(table(columns, rows, wrap={"SCHEDULE", "NEXT RUN"}))


@app.command("show")
def show_schedule(
    ctx: typer.Context, schedule: ScheduleArg, format: FormatOption = OutputFormat.TABLE
) -> None:
    """Show a schedule: its timing, state, counters and input."""
    with client(ctx) as flux:
        info = flux.get_schedule(schedule)
    _print(info, format)


@app.command("create")
def create(
    ctx: typer.Context,
    workflow: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="Workflow to run.", show_default=False)
    ],
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Name of the new schedule.", show_default=False)
    ],
    cron_expression: _CronOption = None,
    interval_seconds: _SecondsOption = None,
    interval_minutes: _MinutesOption = None,
    interval_hours: _HoursOption = None,
    interval_days: _DaysOption = None,
    once_at: _OnceOption = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            metavar="TZ",
            help="IANA time zone of the cron expression (and of a --once time without offset). "
            "Default: UTC.",
        ),
    ] = None,
    description: _DescriptionOption = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input", metavar="JSON", help="Input of every run, as JSON text; - reads stdin."
        ),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Create a schedule: exactly one of --cron, --interval-* (they add up) or --once."""
    schedule = build_schedule(
        cron_expression=cron_expression,
        seconds=interval_seconds,
        minutes=interval_minutes,
        hours=interval_hours,
        days=interval_days,
        once_at=once_at,
        timezone=timezone,
    )
    value = parse_json(input, "--input")
    with client(ctx) as flux:
        info = flux.create_schedule(workflow, name, schedule, description=description, input=value)
    _print(info, format)


@app.command("update")
def update(
    ctx: typer.Context,
    schedule: ScheduleArg,
    cron_expression: _CronOption = None,
    interval_seconds: _SecondsOption = None,
    interval_minutes: _MinutesOption = None,
    interval_hours: _HoursOption = None,
    interval_days: _DaysOption = None,
    once_at: _OnceOption = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            metavar="TZ",
            help="IANA time zone of the schedule (and of a --once time without offset). "
            "Default: the zone it has.",
        ),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="What the schedule is for ('' clears).")
    ] = None,
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            metavar="JSON",
            help="Input of every run, as JSON text (null clears); - reads stdin.",
        ),
    ] = None,
    catch_up: Annotated[
        CatchUp | None,
        typer.Option(
            "--catch-up",
            case_sensitive=False,
            help="A tick missed while no server ran: run it once, skip it, or follow the "
            "server's scheduling.catch_up (default).",
        ),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Change a schedule in place (at most one of --cron, --interval-*, --once); what is not
    given stays, and so does its history. A new timing runs from now."""
    built = _timing(
        cron_expression=cron_expression,
        seconds=interval_seconds,
        minutes=interval_minutes,
        hours=interval_hours,
        days=interval_days,
        once_at=once_at,
        timezone=timezone,
        required=False,
    )
    changes: dict[str, Any] = {}
    if built is not None:
        config = built.to_config()
        if timezone is None:
            # No zone in the config: the server reads it in the zone the schedule has.
            if once_at is not None:
                config = {"type": "once", "run_at": once_at}
            config.pop("timezone", None)
        changes["schedule_config"] = config
    elif timezone is not None:
        interval(seconds=1, timezone=timezone)  # flux.schedules' check of the zone
        changes["timezone"] = timezone
    if description is not None:
        changes["description"] = description or None
    if input is not None:
        changes["input"] = parse_json(input, "--input")
    if catch_up is not None:
        changes["catch_up"] = None if catch_up is CatchUp.DEFAULT else catch_up.value
    if not changes:
        raise UsageError(
            "nothing to change: give --cron, --interval-*, --once, --timezone, --description, "
            "--input or --catch-up"
        )
    with client(ctx) as flux:
        info = flux.update_schedule(schedule, **changes)
    _print(info, format)


@app.command("pause")
def pause(
    ctx: typer.Context, schedule: ScheduleArg, format: FormatOption = OutputFormat.TABLE
) -> None:
    """Stop a schedule from firing until it is resumed."""
    with client(ctx) as flux:
        info = flux.pause_schedule(schedule)
    _print(info, format)


@app.command("resume")
def resume(
    ctx: typer.Context, schedule: ScheduleArg, format: FormatOption = OutputFormat.TABLE
) -> None:
    """Fire a paused schedule again, from its next time after now."""
    with client(ctx) as flux:
        info = flux.resume_schedule(schedule)
    _print(info, format)


@app.command("history")
def history(
    ctx: typer.Context,
    schedule: ScheduleArg,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="How many runs, newest first.")
    ] = 20,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show a schedule's latest runs: when each was due, its execution and outcome."""
    with client(ctx) as flux:
        runs = flux.schedule_history(schedule, limit=limit)
    if format is OutputFormat.JSON:
        print_json(runs)
        return
    if not runs:
        show(f"Schedule {schedule!r} has not run yet.")
        return
    columns = ("DUE", "FIRED", "STATE", "EXECUTION", "ERROR")
    show(table(columns, (_run_row(r) for r in runs), wrap={"ERROR"}))


@app.command("delete")
def delete(ctx: typer.Context, schedule: ScheduleArg) -> None:
    """Delete a schedule and its history (the executions it started stay)."""
    with client(ctx) as flux:
        deleted = flux.delete_schedule(schedule)
    show(f"Deleted schedule {deleted.name!r} ({deleted.id}).")


def build_schedule(
    *,
    cron_expression: str | None = None,
    seconds: float | None = None,
    minutes: float | None = None,
    hours: float | None = None,
    days: float | None = None,
    once_at: str | None = None,
    timezone: str | None = None,
) -> Schedule:
    """The schedule the ``create`` options describe.

    Raises:
        UsageError: not exactly one kind is given, or the schedule is invalid (the message
            says why; the CLI exits with code 2).
    """
    schedule = _timing(
        cron_expression=cron_expression,
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        days=days,
        once_at=once_at,
        timezone=timezone,
        required=True,
    )
    assert schedule is not None
    return schedule


def _timing(
    *,
    cron_expression: str | None,
    seconds: float | None,
    minutes: float | None,
    hours: float | None,
    days: float | None,
    once_at: str | None,
    timezone: str | None,
    required: bool,
) -> Schedule | None:
    """The schedule the timing options describe (``None``: none given, when not
    ``required``). Raises UsageError."""
    parts = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
    kinds = [
        kind
        for kind, given in (
            ("--cron", cron_expression is not None),
            ("--interval-*", any(v is not None for v in parts.values())),
            ("--once", once_at is not None),
        )
        if given
    ]
    if not kinds and not required:
        return None
    if len(kinds) != 1:
        got = f"got {' and '.join(kinds)}" if kinds else "got none"
        raise UsageError(
            f"give {'exactly' if required else 'at most'} one of --cron EXPR, "
            "--interval-seconds/--interval-minutes/--interval-hours/--interval-days N or "
            f"--once ISO ({got})"
        )
    zone = timezone or "UTC"
    if cron_expression is not None:
        return cron(cron_expression, timezone=zone)
    if once_at is not None:
        return schedule_from_config({"type": "once", "run_at": once_at, "timezone": zone})
    return interval(
        seconds=seconds or 0, minutes=minutes or 0, hours=hours or 0, days=days or 0, timezone=zone
    )


def describe(config: dict[str, Any]) -> str:
    """A schedule config in words (``every 1h``, ``cron '0 9 * * *' (UTC)``)."""
    try:
        return schedule_from_config(config).describe()
    except FluxError:
        return format_value(config, 60)


def _print(info: ScheduleInfo, format: OutputFormat) -> None:
    if format is OutputFormat.JSON:
        print_json(info)
        return
    pairs: list[tuple[str, object]] = [
        ("name", info.name),
        ("id", info.id),
        ("workflow", info.workflow_name),
        ("schedule", describe(info.schedule_config)),
        (
            "state",
            info.state.value + (" (from the workflow's schedule option)" if info.auto else ""),
        ),
        ("next run", format_time(info.next_run_at) or "-"),
        ("last run", format_time(info.last_run_at) or "-"),
        ("runs", info.run_count),
        ("failures", info.failure_count),
        ("skipped", info.skip_count),
        ("catch-up", info.catch_up or "default (the server's scheduling.catch_up)"),
    ]
    if info.description:
        pairs.append(("description", info.description))
    if info.input is not None:
        pairs.append(("input", format_value(info.input)))
    pairs += [("created", format_time(info.created_at)), ("updated", format_time(info.updated_at))]
    show(details_table(pairs))


def _run_row(run: ScheduleRun) -> tuple[object, ...]:
    state = run.state.value
    if run.execution_state is not None and run.state.value == "started":
        state = f"started ({run.execution_state.value})"
    return (
        format_time(run.scheduled_for),
        format_time(run.fired_at),
        state,
        run.execution_id or "",
        run.error or "",
    )
