"""Browser tests of the web console: Playwright driving Debian's Chromium (never a browser
Playwright downloads) against a real server and worker on loopback.

Every test here is skipped, with one line saying why, where no ``chromium`` is installed
(``.ci/run`` installs it). Each page a test opens refuses requests that leave loopback and
fails the test on a console error, an uncaught exception or a request it had to refuse.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.console.workflows_source import SOURCE
from tests.support.cluster import FluxCluster, running_cluster

CHROMIUM = shutil.which("chromium")
HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parents[1] / "docs" / "images" / "console"
"""Where :func:`Console.shot` writes when ``FLUX_CONSOLE_SCREENSHOTS=1``: the pictures
docs/console.md shows."""
LOOPBACK = ("127.0.0.1", "localhost")
VIEWPORT = {"width": 1100, "height": 720}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM is not None:
        return
    skip = pytest.mark.skip(reason="no chromium on PATH: apt-get install chromium (.ci/run does)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright, for one module's tests.

    Not pytest-playwright's session-wide fixtures: Playwright's sync API keeps an event loop
    running in this thread while it is started, which breaks every asyncio test after it;
    stopped at the end of the module, it leaves none behind.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxCluster]:
    """One server and worker for a module's tests, with :data:`SOURCE` registered."""
    with running_cluster(tmp_path_factory.mktemp("console"), SOURCE) as c:
        yield c


@dataclass
class Console:
    """A browser page on the console of ``cluster``, watched for what must not happen."""

    page: Any
    cluster: FluxCluster
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.cluster.url + path

    def open(self, path: str) -> Any:
        """Go to ``path``; the page's answer."""
        return self.page.goto(self.url(path))

    def forget(self, fragment: str) -> None:
        """Drop the errors a test caused on purpose (a 400 page is logged as one); there
        must have been one."""
        kept = [e for e in self.errors if fragment not in e]
        assert len(kept) < len(self.errors), f"no error with {fragment!r} in {self.errors}"
        self.errors[:] = kept

    def shot(self, name: str) -> None:
        """Save what the page shows for the docs, when asked to (``FLUX_CONSOLE_SCREENSHOTS=1``)."""
        if os.environ.get("FLUX_CONSOLE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=SCREENSHOTS / f"{name}.png")


@pytest.fixture
def console(chromium: Any, cluster: FluxCluster) -> Iterator[Console]:
    context = chromium.new_context(viewport=VIEWPORT)
    page = context.new_page()
    watched = Console(page, cluster)

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            watched.refused.append(url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watched.errors.append(f"uncaught: {exc}"))
    page.on("dialog", lambda d: (watched.errors.append(f"dialog: {d.message}"), d.dismiss()))
    try:
        yield watched
    finally:
        context.close()
    assert watched.refused == [], f"requests that left loopback: {watched.refused}"
    assert watched.errors == [], f"errors on the page: {watched.errors}"
