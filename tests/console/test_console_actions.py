"""Console actions that change the fleet: schedules from the console, a worker that stops,
and the forms' protection from other sites."""

from __future__ import annotations

import httpx
from flux.client import FluxClient
from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.support.cluster import stop_process
from tests.support.waiting import wait_until


def test_schedule_create_edit_pause_resume_delete(console: Console) -> None:
    console.open("/console/schedules/new?workflow=adder")
    console.page.get_by_label("Name").fill("nightly add")
    console.page.locator('input[name="kind"][value="interval"]').check()
    expect(console.page.get_by_label("Cron expression")).to_be_hidden()
    console.page.get_by_label("Every (seconds)").fill("not a number")
    console.page.get_by_role("button", name="Create").click()
    expect(console.page.locator(".field-error")).to_contain_text("whole number of seconds")
    console.forget("status of 400")
    expect(console.page.get_by_label("Name")).to_have_value("nightly add")

    console.page.get_by_label("Every (seconds)").fill("3600")
    console.page.get_by_label("Input (JSON; empty is null)").fill("5")
    console.page.get_by_role("button", name="Create").click()
    expect(console.page.locator(".notice")).to_contain_text("created schedule 'nightly add'")
    expect(console.page.locator(".facts")).to_contain_text("active")
    console.shot("schedule")

    console.page.get_by_role("button", name="Pause").click()
    expect(console.page.locator(".notice")).to_contain_text("paused")
    console.page.reload()
    expect(console.page.locator(".facts .schedule-state")).to_have_text("paused")
    with FluxClient(console.cluster.url) as flux:
        assert flux.get_schedule("nightly add").state == "paused"
    console.page.get_by_role("button", name="Resume").click()
    # The form's answer first: a reload while its redirect is still loading has no page.
    expect(console.page.locator(".notice")).to_contain_text("resumed schedule 'nightly add'")
    console.page.reload()
    expect(console.page.locator(".facts .schedule-state")).to_have_text("active")

    console.page.get_by_label("Every (seconds)").fill("7200")
    console.page.get_by_role("button", name="Save").click()
    expect(console.page.locator(".notice")).to_contain_text("saved schedule")
    with FluxClient(console.cluster.url) as flux:
        changed = flux.get_schedule("nightly add")
        assert changed.schedule_config["interval_seconds"] == 7200 and changed.input == 5

    console.open("/console/schedules")
    row = console.page.locator('tr[data-schedule="nightly add"]')
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Pause").click()
    expect(console.page.locator('tr[data-schedule="nightly add"]')).to_contain_text("paused")
    console.page.get_by_role("link", name="nightly add").click()
    console.page.get_by_role("link", name="Delete…").click()
    console.page.get_by_role("button", name="Delete nightly add").click()
    expect(console.page.locator(".notice")).to_contain_text("deleted schedule 'nightly add'")
    expect(console.page.locator('tr[data-schedule="nightly add"]')).to_have_count(0)


def test_a_stopped_worker_shows_as_gone(console: Console) -> None:
    worker = console.cluster.start_worker("leaving")
    console.open("/console/workers")
    row = console.page.locator('tr[data-worker="leaving"]')
    expect(row).to_contain_text("connected")
    expect(row).to_contain_text("cores")
    console.shot("workers")
    stop_process(worker)

    def gone() -> bool:
        console.page.reload()
        return "gone" in console.page.locator('tr[data-worker="leaving"]').inner_text()

    wait_until(gone, what="the stopped worker shown as gone")


def test_a_post_from_another_origin_is_refused(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        failed = flux.run("failing", 1, mode="sync")
        before = sum(flux.list_executions(workflow="failing").counts.values())
    console.open(f"/console/executions/{failed.execution_id}")
    token = console.page.locator('input[name="csrf"]').first.get_attribute("value")
    cookies = {c["name"]: c["value"] for c in console.page.context.cookies()}
    assert token and cookies["flux_csrf"] == token
    url = console.url(f"/console/executions/{failed.execution_id}/rerun")
    with httpx.Client(cookies=cookies) as http:
        # The browser's own token, sent from another site's page: refused (by the server's
        # gate, before the console's own check would).
        foreign = http.post(url, data={"csrf": token}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "cross-origin request refused" in foreign.text
        # From this server's page without the token: refused too.
        tokenless = http.post(url, data={}, headers={"Origin": console.cluster.url})
        assert tokenless.status_code == 403 and "security token" in tokenless.text
        # Neither changed anything; the same form from the console's own page does.
        with FluxClient(console.cluster.url) as flux:
            assert sum(flux.list_executions(workflow="failing").counts.values()) == before
        own = http.post(url, data={"csrf": token}, headers={"Origin": console.cluster.url})
        assert own.status_code == 303
    # The cookie the token lives in is not for scripts, nor for other sites' requests.
    cookie = next(c for c in console.page.context.cookies() if c["name"] == "flux_csrf")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    with FluxClient(console.cluster.url) as flux:
        after = sum(flux.list_executions(workflow="failing").counts.values())
    assert after == before + 1
