"""What the browser tests share: a headless Chromium page, a web process, signing in, and
screenshots of the pages they visit (into ``$BROWSER_SCREENSHOTS``, a folder, for people
reviewing a change; into the test's temporary folder when it is unset)."""

import os
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM
from tests.support.processes import start_web

# Flags for a closed network and running as root (see docs/operations.md).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(accept_downloads=True)
        page.set_default_timeout(60_000)
        yield page
        browser.close()


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    """Only the web process (a test starts a runner when it wants one, so a result can only
    reach an open page by being pushed to it)."""
    process, base_url = start_web(tmp_path_factory.mktemp("web"))
    yield base_url
    process.terminate()


def sign_in(page, web: str, username: str, then: str = "/requests/") -> None:
    """Sign ``username`` (a ``make_user`` user) in on the login page, landing on ``then``."""
    page.goto(f"{web}/accounts/login/?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", f"{username}-Secret-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"**{then}")


def screenshot(page, name: str, tmp_path: Path) -> Path:
    """Save the whole page as ``<name>.png`` and return its path."""
    folder = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
