"""The spec's scheduled workflows (flux-core 0.18 README): its SDK code block, run with
asserted results."""

from __future__ import annotations

from datetime import UTC, datetime

from flux import ExecutionContext, task, workflow


def test_scheduled_workflow_definitions():
    from flux import cron, interval
    from flux.schedules import CronSchedule, IntervalSchedule

    @task
    async def generate_daily_report(date: str):
        return f"Report generated for {date}"

    @workflow.with_options(name="daily_report", schedule=cron("0 9 * * MON-FRI", timezone="UTC"))
    async def daily_report_workflow(ctx: ExecutionContext):
        result = await generate_daily_report("today")
        return {"report": result}

    @workflow.with_options(name="data_sync", schedule=interval(hours=6, timezone="UTC"))
    async def data_sync_workflow(ctx: ExecutionContext):
        return {"status": "synced"}

    assert daily_report_workflow.name == "daily_report"
    assert isinstance(daily_report_workflow.schedule, CronSchedule)
    assert daily_report_workflow.schedule.to_config() == {
        "type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "UTC",
    }
    # Friday 10:00 UTC -> next is Monday 09:00 UTC.
    friday = datetime(2025, 1, 3, 10, 0, tzinfo=UTC)
    assert daily_report_workflow.schedule.next_run_after(friday) == datetime(
        2025, 1, 6, 9, 0, tzinfo=UTC
    )

    assert data_sync_workflow.name == "data_sync"
    assert isinstance(data_sync_workflow.schedule, IntervalSchedule)
    assert data_sync_workflow.schedule.interval_seconds == 6 * 3600
    assert data_sync_workflow.schedule.timezone == "UTC"

    # The schedule is metadata: the workflows still run locally.
    assert daily_report_workflow.run().output == {"report": "Report generated for today"}
    assert data_sync_workflow.run().output == {"status": "synced"}
    # with_options on an existing workflow keeps the schedule.
    assert daily_report_workflow.with_options(name="other").schedule is (
        daily_report_workflow.schedule
    )
