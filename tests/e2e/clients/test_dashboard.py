"""End to end: the gateway's web dashboard in headless Chromium (Debian's package, driven by
Playwright) against a live devnet. Every page loads with no console error and no failed
request; a job created during the test shows on the Jobs page and its tasks turn completed in
the live feed without a reload; each page is screenshot on a desktop and a phone-sized screen
into tests/artifacts/dashboard/ (CI keeps them)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, Response, sync_playwright

from triggerx import Client, Job

FEE = {"max_fee_per_task": 10**16}
pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package, installed by scripts/setup
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "dashboard"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000


class BrowserProblems:
    """What a page did wrong: console errors, uncaught exceptions, failed and refused requests."""

    def __init__(self, page: Page) -> None:
        self.found: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.found.append(f"uncaught: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._answered)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.found.append(f"console error: {message.text}")

    def _failed(self, request: Request) -> None:
        self.found.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _answered(self, response: Response) -> None:
        if response.status >= 400:
            self.found.append(f"HTTP {response.status}: {response.request.method} {response.url}")


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: scripts/setup installs Debian's chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport=DESKTOP)
        finally:
            browser.close()


def test_dashboard_files_have_their_types_and_a_closed_policy(client_devnet):
    gateway = client_devnet["gatewayUrl"]
    index = httpx.get(f"{gateway}/")
    assert index.status_code == 200
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.headers["cache-control"] == "no-cache"
    policy = index.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    host = httpx.URL(gateway).netloc.decode()
    assert f"connect-src 'self' ws://{host} wss://{host};" in policy
    assert "http" not in policy  # no other origin, by any scheme
    types = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}
    for name, content_type in types.items():
        answer = httpx.get(f"{gateway}/dashboard/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(content_type), name
        again = httpx.get(f"{gateway}/dashboard/{name}", headers={"If-None-Match": answer.headers["etag"]})
        assert (again.status_code, again.content) == (304, b""), name
    missing = httpx.get(f"{gateway}/dashboard/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no dashboard file 'nothing.js'"
    assert httpx.get(f"{gateway}/dashboard/..%2Fdashboard.py").status_code == 404  # only the folder's files
    # Not API operations: the OpenAPI document does not list them.
    paths = httpx.get(f"{gateway}/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/dashboard")]


def test_dashboard_shows_a_new_job_and_its_tasks_completing_live(client_devnet, page):
    gateway = client_devnet["gatewayUrl"]
    problems = BrowserProblems(page)
    page.goto(f"{gateway}/")
    page.wait_for_selector("nav a.current[data-page=jobs]")
    page.wait_for_selector(".panel table.jobs, .panel .note")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    with Client(gateway, client_devnet["demoOwnerKey"]) as client:  # through the SDK, as a user would
        counter, ends = client_devnet["demoCounter"], int(time.time()) + 90  # not firing for later tests
        job_id = client.create(Job.interval(counter, "increment()", every_seconds=2, end=ends, **FEE)).id
    row = page.wait_for_selector(f"tr[data-job-id='{job_id}']", timeout=WAIT_MS)  # refreshed, not reloaded
    assert "interval" in row.inner_text()
    assert "active" in row.inner_text()

    page.click("nav a[data-page=feed]")
    completed = f"li.event[data-job-id='{job_id}'][data-kind=TASK_STATUS_CHANGED][data-status=completed]"
    event = page.wait_for_selector(completed, timeout=60_000)
    assert "completed" in event.inner_text()
    assert page.evaluate("window.sameDocument") is True, "the page reloaded"

    page.click(f"li.event[data-job-id='{job_id}'] a")
    task = page.wait_for_selector("article.task[data-status=completed]", timeout=WAIT_MS)
    attempt = task.inner_text()
    assert "approved" in attempt
    assert "op " in attempt  # its signers
    assert task.query_selector("td[data-label='Execution tx'] .hash") is not None

    ready = {
        "jobs": "table.jobs tbody tr",
        f"job/{job_id}": "article.task[data-status=completed]",
        "feed": "li.event",
        "keepers": ".card.keeper[data-online=true] svg.sparkline",
        "leaderboards": "table.board tbody tr",
        "stats": ".chart-grid svg.chart polyline",
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for screen, size in [("desktop", DESKTOP), ("phone", PHONE)]:
        page.set_viewport_size(size)
        for route, selector in ready.items():
            page.evaluate("route => { location.hash = '#/' + route }", route)
            page.wait_for_selector(selector, timeout=WAIT_MS)
            overflow = page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert overflow <= 0, f"#{route} is {overflow} px wider than a {screen} screen"
            name = route.split("/")[0]
            if name == "keepers":  # the devnet's three, each with its activity drawn
                assert len(page.query_selector_all(selector)) == 3
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{screen}.png"), full_page=True)
    assert page.evaluate("window.sameDocument") is True, "the page reloaded"
    assert problems.found == []
