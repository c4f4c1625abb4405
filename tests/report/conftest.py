"""A real headless Chromium (the system's, never a downloaded build) for the report pages.

Pages are opened from `file://` with the network off: the browser context is offline and
every request that is not the page itself is refused and recorded, so a test can assert
that the page asked for nothing. JavaScript errors and console errors are recorded too.
Screenshots go to `$REPORT_ARTIFACTS` (tox sets it to the env's tmp folder) or to the
test run's temporary folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from daglite import settings

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser():
    """The system Chromium driven by playwright (skipped, saying why, when there is none)."""
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium on this machine: install it (Debian: apt-get install -y chromium; "
            "the report tox env tries this itself, as root) to run the browser tests"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class OpenPage:
    """A report page opened in the browser, with what went wrong while it loaded."""

    def __init__(self, page, errors: list[str], requests: list[str]) -> None:
        self.page = page
        self.errors = errors
        self.requests = requests


@pytest.fixture
def open_report(browser):
    """Open a report file offline; returns an `OpenPage` once the page has drawn itself."""
    contexts = []

    def open_(path: Path, width: int = 1280, height: int = 900) -> OpenPage:
        context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning")
                else None
            ),
        )
        url = path.resolve().as_uri()

        def route(route_):
            if route_.request.url == url:
                route_.continue_()
            else:
                requests.append(route_.request.url)
                route_.abort()

        page.route("**/*", route)
        page.goto(url)
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        return OpenPage(page, errors, requests)

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where screenshots are kept after the run."""
    folder = os.environ.get("REPORT_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.getbasetemp() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _no_default_processors(monkeypatch):
    """Sessions start with no event processor unless a test asks for one."""
    monkeypatch.setenv("DAGLITE_PROCESSORS", "")
    settings.set_global_settings(None)
