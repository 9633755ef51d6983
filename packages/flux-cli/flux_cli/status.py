"""An execution's status as the CLI prints it (``flux workflow status``, ``flux execution
show``, and after a run or resume)."""

from __future__ import annotations

from flux.protocol import ExecutionStatus

from flux_cli.output import details_table, format_time, format_value, show, table

__all__ = ["print_status"]


def print_status(status: ExecutionStatus) -> None:
    """State, times, input and output; the waiting pauses; the events when it has them."""
    show(
        details_table(
            [
                ("execution", status.execution_id),
                ("workflow", f"{status.workflow_name} v{status.workflow_version}"),
                ("state", status.state.value),
                ("worker", status.worker or ""),
                ("created", format_time(status.created_at)),
                ("updated", format_time(status.updated_at)),
                ("input", format_value(status.input)),
                ("output", format_value(status.output)),
            ]
        )
    )
    if status.pauses:
        waiting = (
            (p.name, format_time(p.paused_at), format_value(p.data, 60)) for p in status.pauses
        )
        show("", table(("PAUSE", "PAUSED AT", "DATA"), waiting, title="Waiting pauses"))
    if status.events is not None:
        rows = (
            (format_time(e.time), e.type.value, e.name, format_value(e.view, 60))
            for e in status.events
        )
        columns = ("TIME", "EVENT", "NAME", "VALUE")
        show("", table(columns, rows, title="Events", wrap={"TIME", "NAME", "VALUE"}))
