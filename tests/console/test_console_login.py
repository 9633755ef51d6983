"""The console on a server whose authentication is on: a browser logs in with an API key,
keeps it in a cookie, follows a live execution with it, and is sent back to the login page
when the key is revoked or it logs out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flux.client import FluxClient
from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.console.workflows_source import SOURCE
from tests.support.cluster import FluxCluster, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxCluster]:
    """This module's server requires a key (``server.auth = on``, on loopback)."""
    home = tmp_path_factory.mktemp("console-auth")
    with running_cluster(home, SOURCE, FLUX_SERVER__AUTH="on") as c:
        yield c


def test_a_browser_logs_in_follows_an_execution_and_is_logged_out(
    console: Console, tmp_path: Path
) -> None:
    cluster = console.cluster
    gate = tmp_path / "gate"
    with FluxClient(cluster.url, api_key=cluster.api_key) as flux:
        viewer = flux.create_key("console-viewer", "viewer")
        running = flux.run("gated", str(gate))

    # A bookmarked page with its filters: the login page first, then that page.
    console.open("/console/executions?state=COMPLETED&workflow=gated")
    expect(console.page.locator("main h1")).to_have_text("Log in")
    console.page.get_by_label("API key").fill("flux_nope_nope")
    console.page.get_by_role("button", name="Log in").click()
    expect(console.page.locator(".error")).to_contain_text("unknown, expired or revoked")
    console.forget("status of 401")
    console.page.get_by_label("API key").fill(viewer.key)
    console.page.get_by_role("button", name="Log in").click()
    expect(console.page).to_have_url(
        cluster.url + "/console/executions?state=COMPLETED&workflow=gated"
    )
    expect(console.page.locator(".whoami")).to_contain_text("console-viewer (viewer)")
    cookies = {c["name"]: c for c in console.page.context.cookies()}
    key_cookie = cookies["flux_key"]
    assert key_cookie["httpOnly"] and key_cookie["sameSite"] == "Strict"
    assert key_cookie["path"] == "/console"

    # A viewer reads; a form that changes state is refused: back on the form's page, which
    # names the role it needs.
    console.open(f"/console/executions/{running.execution_id}")
    expect(console.page.locator("#live [data-state]")).to_have_text("RUNNING")
    console.page.get_by_role("link", name="Cancel…").click()
    form_page = console.page.url
    console.page.get_by_role("button", name="Cancel 1 execution").click()
    notice = console.page.locator(".notice-error")
    expect(notice).to_contain_text("needs the operator role")
    expect(notice).to_contain_text("console-viewer")
    assert console.page.url == form_page
    console.page.reload()  # shown once
    expect(console.page.locator(".notice-error")).to_have_count(0)

    # The live stream of a running execution goes through the same cookie.
    console.open(f"/console/executions/{running.execution_id}")
    expect(console.page.locator("#live [data-state]")).to_have_text("RUNNING")
    gate.write_text("open")
    expect(console.page.locator("#live [data-state]")).to_have_text("COMPLETED")

    # A revoked key: back to the login page, the cookie gone.
    with FluxClient(cluster.url, api_key=cluster.api_key) as flux:
        flux.revoke_key(viewer.id)
    console.open(f"/console/executions/{running.execution_id}")
    expect(console.page.locator("main h1")).to_have_text("Log in")
    expect(console.page.locator(".error")).to_contain_text("no longer valid")
    assert "flux_key" not in {c["name"] for c in console.page.context.cookies()}

    # Logging out forgets the key: the next page asks for one again.
    console.page.get_by_label("API key").fill(cluster.api_key or "")
    console.page.get_by_role("button", name="Log in").click()
    expect(console.page.locator(".whoami")).to_contain_text("(admin)")
    console.page.get_by_role("button", name="Log out").click()
    expect(console.page.locator("main h1")).to_have_text("Log in")
    console.open("/console/workers")
    expect(console.page.locator("main h1")).to_have_text("Log in")
