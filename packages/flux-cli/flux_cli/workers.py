"""``flux workers ...``: the workers registered with the server."""

from __future__ import annotations

import typer
from flux.protocol import WorkerInfo

from flux_cli.context import client
from flux_cli.output import FormatOption, OutputFormat, format_time, print_json, show, table

__all__ = ["app", "register"]

app = typer.Typer(name="workers", help="Inspect the workers connected to a Flux server.")


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("list")
def list_workers(ctx: typer.Context, format: FormatOption = OutputFormat.TABLE) -> None:
    """List registered workers with their capacity, load and resources."""
    with client(ctx) as flux:
        workers = flux.list_workers()
    if format is OutputFormat.JSON:
        print_json(workers)
        return
    if not workers:
        show("No workers registered. Start one with: flux start worker")
        return
    columns = ("NAME", "CONNECTED", "RUNNING", "CAPACITY", "HOST", "CPUS", "MEMORY", "GPUS")
    rows = (_row(w) for w in workers)
    show(table(columns, rows, wrap={"CONNECTED", "HOST", "MEMORY", "GPUS"}))


def _row(worker: WorkerInfo) -> tuple[object, ...]:
    resources = worker.resources
    return (
        worker.name,
        "yes" if worker.connected else f"no (last seen {format_time(worker.last_heartbeat)})",
        worker.running,
        worker.capacity,
        worker.runtime.hostname,
        resources.cpu_count or "",
        _gib(resources.memory_available, resources.memory_total),
        ", ".join(gpu.name for gpu in resources.gpus),
    )


def _gib(free: int, total: int) -> str:
    if not total:
        return ""
    return f"{free / 2**30:.1f}/{total / 2**30:.1f} GiB free"
