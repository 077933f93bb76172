"""A person in a real headless Chromium with the real runner and model: create a collection,
upload two files, watch them get indexed without a reload, search, and find the right passage
first."""

import pytest

from tests.browser.conftest import screenshot, sign_in
from tests.support.processes import start_runner

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

QUEUE = (
    "PostgreSQL is the job queue. Runners take waiting jobs with SELECT FOR UPDATE SKIP LOCKED, "
    "so two runners never take the same job.\n\nNo message broker is needed."
)
GARDEN = (
    "<html><body><h1>The garden</h1><p>Tomatoes need full sun and regular watering.</p>"
    "<p>Basil grows well beside tomatoes in warm soil.</p><script>track()</script></body></html>"
)


@pytest.fixture
def alice(make_user):
    return make_user("alice")  # Before the browser starts (see tests/browser/conftest.py).


def test_upload_two_files_watch_them_index_live_and_find_the_right_passage(web, alice, page, tmp_path):
    sign_in(page, web, "alice", then="/search/collections/")
    screenshot(page, "search-collections-empty", tmp_path)
    page.fill("#new-collection input[name=name]", "Notes")
    page.click("#new-collection button[type=submit]")
    page.wait_for_url("**/search/collections/*/")
    page.set_input_files("#add-documents input[name=files]", [
        {"name": "queue.md", "mimeType": "text/markdown", "buffer": QUEUE.encode()},
        {"name": "garden.html", "mimeType": "text/html", "buffer": GARDEN.encode()},
    ])
    page.click("#add-documents button[type=submit]")
    page.wait_for_url("**/search/collections/*/")
    assert page.locator("#document-table tbody tr[data-state=queued]").count() == 2
    page.evaluate("window.__sameDocument = true")
    screenshot(page, "search-collection-queued", tmp_path)

    runner = start_runner(tmp_path, GPU_RUNNER_MODELS="all-minilm-l6-v2")
    try:
        page.locator("#document-table tbody tr[data-state=indexed]").nth(1).wait_for()
        assert page.evaluate("window.__sameDocument") is True  # Shown live, not reloaded.
        screenshot(page, "search-collection-indexed", tmp_path)

        page.fill("#collection-search input[name=q]", "How do workers avoid grabbing the same task?")
        page.click("#collection-search button[type=submit]")
        page.locator("#results").wait_for()
    finally:
        runner.terminate()

    first = page.locator("#results li.result").first
    assert first.locator(".result-title").inner_text() == "queue.md"
    assert "SKIP LOCKED" in first.locator(".passage").inner_text()
    screenshot(page, "search-results", tmp_path)
