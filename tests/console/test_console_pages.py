"""The console's pages in a browser: every page offline and without errors, filters in the
URL, live updates, resume, cancel, escaping, secrets, large histories."""

from __future__ import annotations

import re
from pathlib import Path

from flux.client import FluxClient
from flux.domain import ExecutionState
from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.support.waiting import wait_until

SECRET_VALUE = "hunter2-do-not-show-7f3a"


def _state(console: Console) -> object:
    return console.page.locator("#live [data-state]")


def test_every_page_renders_offline_without_errors(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        done = flux.run("adder", 1, mode="sync")
        failed = flux.run("failing", 3, mode="sync")
        paused = flux.run("approval", None, mode="sync")
        flux.set_secret("api_token", SECRET_VALUE)
        hourly = {"type": "interval", "interval_seconds": 3600}
        flux.create_schedule("adder", "hourly_adder", hourly)
    pages = {
        "overview": "/console",
        "executions": "/console/executions",
        "execution-completed": f"/console/executions/{done.execution_id}",
        "execution-failed": f"/console/executions/{failed.execution_id}",
        "execution-paused": f"/console/executions/{paused.execution_id}",
        "workflows": "/console/workflows",
        "workflow": "/console/workflows/adder",
        "schedules": "/console/schedules",
        "schedule": "/console/schedules/hourly_adder",
        "schedule-new": "/console/schedules/new",
        "workers": "/console/workers",
        "secrets": "/console/secrets",
    }
    for name, path in pages.items():
        answer = console.open(path)
        assert answer.status == 200, f"{path}: {answer.status}"
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        expect(console.page.locator("main h1")).to_be_visible()
        # The secret's value is on no page, whatever the page shows.
        assert SECRET_VALUE not in console.page.content(), path
        if name in ("overview", "executions", "execution-failed", "execution-paused", "workflow"):
            console.shot(name)
    expect(console.page.locator("main")).to_contain_text("api_token")

    # A browser opening the server's root lands on the console.
    console.open("/")
    assert console.page.url == console.url("/console")

    # The Swagger UI draws the API from files the server serves itself.
    console.open("/docs")
    expect(console.page.locator(".swagger-ui .info .title")).to_contain_text("Flux")
    expect(console.page.locator(".opblock-summary-path").first).to_be_visible()


def test_filters_live_in_the_url_and_survive_a_reload(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        failed = {flux.run("failing", i, mode="sync").execution_id for i in range(2)}
        flux.run("adder", 5, mode="sync")
    console.open("/console/executions")
    console.page.get_by_label("Workflow").select_option("failing")
    console.page.locator('input[name="state"][value="FAILED"]').check()
    console.page.get_by_role("button", name="Filter").click()
    expect(console.page).to_have_url(re.compile(r"workflow=failing.*state=FAILED"))

    def shown() -> set[str]:
        return set(console.page.locator("table.executions a.id").all_inner_texts())

    before = shown()
    assert failed <= before
    console.page.reload()
    assert shown() == before
    expect(console.page.locator('input[name="state"][value="FAILED"]')).to_be_checked()
    expect(console.page.get_by_label("Workflow")).to_have_value("failing")

    # An exact id finds that execution alone.
    one = sorted(failed)[0]
    console.open(f"/console/executions?q={one}")
    assert shown() == {one}


def test_a_running_execution_turns_completed_without_reload(
    console: Console, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with FluxClient(console.cluster.url) as flux:
        started = flux.run("gated", str(gate))
    console.open(f"/console/executions/{started.execution_id}")
    expect(_state(console)).to_have_text(re.compile("SCHEDULED|CLAIMED|RUNNING"))
    # The first task's bar arrives (live, or with the page) while the second one waits.
    expect(console.page.locator(".timeline .bar-completed")).to_have_count(1)
    expect(_state(console)).to_have_text("RUNNING")
    console.page.evaluate("window.notReloaded = true")
    gate.write_text("open")
    expect(_state(console)).to_have_text("COMPLETED")
    assert console.page.evaluate("window.notReloaded") is True
    expect(console.page.locator(".timeline .bar")).to_have_count(2)
    expect(console.page.locator(".timeline .bar-completed")).to_have_count(2)
    expect(console.page.locator("#live pre.output")).to_contain_text("2 open")


def test_resume_a_paused_execution_through_its_form(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        paused = flux.run("approval", None, mode="sync")
    assert paused.state == ExecutionState.PAUSED
    console.open(f"/console/executions/{paused.execution_id}")
    form = console.page.locator('form.resume[data-pause="approve"]')
    expect(form).to_contain_text('"amount": 120')

    # Not JSON: refused next to the field, with what was typed kept.
    form.locator("textarea").fill("{not json")
    form.get_by_role("button", name="Resume").click()
    error = console.page.locator('form.resume[data-pause="approve"] .field-error')
    expect(error).to_contain_text("not valid JSON")
    expect(console.page.locator('form.resume[data-pause="approve"] textarea')).to_have_value(
        "{not json"
    )
    console.forget("status of 400")

    form = console.page.locator('form.resume[data-pause="approve"]')
    form.locator("textarea").fill('{"ok": true}')
    form.get_by_role("button", name="Resume").click()
    expect(console.page.locator(".notice")).to_contain_text("resumed at pause 'approve'")
    expect(_state(console)).to_have_text("COMPLETED")
    expect(console.page.locator("#live pre.output")).to_contain_text('"ok": true')
    with FluxClient(console.cluster.url) as flux:
        assert flux.get_execution(paused.execution_id).output == {"answer": {"ok": True}}


def test_cancel_asks_first_then_cancels(console: Console, tmp_path: Path) -> None:
    with FluxClient(console.cluster.url) as flux:
        started = flux.run("gated", str(tmp_path / "never"))
    console.open(f"/console/executions/{started.execution_id}")
    console.page.get_by_role("link", name="Cancel…").click()
    expect(console.page.locator("h1")).to_have_text("Cancel 1 execution?")
    expect(console.page.locator("tr[data-id]")).to_have_count(1)
    console.page.get_by_role("button", name="Cancel 1 execution").click()
    expect(console.page.locator(".notice")).to_contain_text("cancel asked for 1 of 1")
    expect(_state(console)).to_have_text("CANCELLED")


def test_bulk_cancel_takes_exactly_the_ids_confirmed(console: Console, tmp_path: Path) -> None:
    with FluxClient(console.cluster.url) as flux:
        ids = [flux.run("gated", str(tmp_path / f"never-{i}")).execution_id for i in range(3)]
    chosen, spared = ids[:2], ids[2]
    console.open("/console/executions?workflow=gated")
    for execution_id in chosen:
        console.page.get_by_label(f"select {execution_id}").check()
    console.page.get_by_role("button", name="Cancel selected…").click()
    expect(console.page.locator("h1")).to_have_text("Cancel 2 executions?")
    console.shot("bulk-cancel")
    # Another execution that matches the list's filter, started meanwhile: a reload of the
    # confirmation still names the same two.
    with FluxClient(console.cluster.url) as flux:
        later = flux.run("gated", str(tmp_path / "never-later")).execution_id
    console.page.reload()
    rows = console.page.locator("tr[data-id]")
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-id") for i in range(2)} == set(chosen)
    console.page.get_by_role("button", name="Cancel 2 executions").click()
    expect(console.page.locator(".notice")).to_contain_text("cancel asked for 2 of 2")
    with FluxClient(console.cluster.url) as flux:
        for execution_id in chosen:
            wait_until(
                lambda e=execution_id: flux.get_execution(e).state == ExecutionState.CANCELLED,
                what=f"{execution_id} cancelled",
            )
        for execution_id in (spared, later):
            assert flux.get_execution(execution_id).state != ExecutionState.CANCELLED
        flux.cancel_executions([spared, later])


def test_workflow_source_is_shown_as_text(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        ran = flux.run("sneaky", None, mode="sync")
    console.open("/console/workflows/sneaky")
    expect(console.page.locator("pre.source")).to_contain_text('<script>alert("x")</script>')
    console.open(f"/console/executions/{ran.execution_id}")
    expect(console.page.locator("#live pre.output")).to_contain_text("<script>document.title")
    assert console.page.title() != "owned"
    assert console.page.locator("main script").count() == 0


def test_run_a_workflow_with_input_then_rerun_it(console: Console) -> None:
    console.open("/console/workflows/adder")
    console.page.get_by_label("Input (JSON; empty is null)").fill("41")
    console.page.get_by_role("button", name=re.compile("Run v")).click()
    expect(console.page.locator(".notice")).to_contain_text("started adder")
    expect(_state(console)).to_have_text("COMPLETED")
    expect(console.page.locator("#live pre.output")).to_have_text("42")
    first = console.page.url

    with FluxClient(console.cluster.url) as flux:
        failed = flux.run("failing", 7, mode="sync")
    console.open(f"/console/executions/{failed.execution_id}")
    console.page.get_by_role("button", name="Rerun with the same input").click()
    expect(console.page.locator(".notice")).to_contain_text(f"input of {failed.execution_id}")
    old = console.url(f"/console/executions/{failed.execution_id}")
    assert console.page.url not in (first, old)
    expect(_state(console)).to_have_text("FAILED")
    expect(console.page.locator("#live pre").first).to_have_text("7")


def test_an_execution_with_5000_events_opens_a_page_at_a_time(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        big = flux.run("many_tasks", 2500, mode="sync")
        assert big.state == ExecutionState.COMPLETED, big
    console.open(f"/console/executions/{big.execution_id}")
    rows = console.page.locator("table.event-list tbody tr")
    expect(rows).to_have_count(100)
    # The timeline draws a bounded number of bars and says how many it left out.
    expect(console.page.locator(".timeline li.bar")).to_have_count(200)
    expect(console.page.locator(".timeline li.gap")).to_contain_text("2,300 more task calls")
    expect(console.page.locator(".timeline-box")).to_contain_text("2,500 task calls")
    first = int(rows.first.locator("td").first.inner_text())
    console.page.get_by_role("link", name="Later events »").click()
    expect(rows).to_have_count(100)
    assert int(rows.first.locator("td").first.inner_text()) > first
    console.page.get_by_role("link", name="Failures").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("No failure events")


def test_pages_fit_a_phone_screen(console: Console) -> None:
    with FluxClient(console.cluster.url) as flux:
        failed = flux.run("failing", 4, mode="sync")
    console.page.set_viewport_size({"width": 390, "height": 844})
    for path in (
        "/console",
        "/console/executions",
        f"/console/executions/{failed.execution_id}",
        "/console/workflows/adder",
        "/console/schedules/new",
        "/console/workers",
    ):
        console.open(path)
        # Wide tables scroll inside their own box; the page itself never scrolls sideways.
        width = console.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
        if path.startswith("/console/executions/"):
            console.shot("phone-execution")
