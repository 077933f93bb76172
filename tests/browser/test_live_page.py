"""A person in a real headless Chromium: sign in, submit, watch the result arrive, and
download it."""

import numpy as np
import pytest

from tests.browser.conftest import screenshot, sign_in
from tests.support.processes import start_runner

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]



@pytest.fixture
def alice(make_user):
    # Created before the browser starts: Playwright's sync API runs an event loop in this
    # thread, where Django refuses synchronous database calls.
    return make_user("alice")


def test_sign_in_submit_and_the_result_appears_without_a_reload(web, alice, page, tmp_path):
    page.goto(f"{web}/requests/")
    assert "/accounts/login/" in page.url
    sign_in(page, web, "alice")

    page.fill("textarea[name=text]", "A cat sits on the mat.\nA kitten rests on a rug.\nInterest rates rose.")
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/requests/*/")
    # Mark this document: a reload or navigation would lose the mark.
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#request-status").inner_text() == "Queued"

    runner = start_runner(tmp_path)
    try:
        page.locator("#result-preview").wait_for(state="visible")
    finally:
        runner.terminate()

    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#request-status").inner_text() == "Succeeded"
    assert page.locator("#result-preview table.vectors tbody tr").count() == 3
    assert page.locator("#result-preview table.similarity").is_visible()
    screenshot(page, "request-succeeded", tmp_path)

    with page.expect_download() as download:
        page.click("text=Download .npy")
    array = np.load(download.value.path())
    assert array.shape == (3, 384) and array.dtype == np.float32


def test_a_running_bulk_requests_progress_bar_advances_without_a_reload(web, alice, page, tmp_path):
    sign_in(page, web, "alice")

    # Long texts in small batches: the request runs for seconds, in many forward passes.
    words = "the quick brown fox jumps over the lazy dog while rain falls on the old town"
    lines = [f"{n}: {words} " * 8 for n in range(256)]
    page.fill("textarea[name=text]", "\n".join(lines))
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/requests/*/")
    page.evaluate("window.__sameDocument = true")
    # Every value the progress bar shows, as the page redraws it.
    page.evaluate("""() => {
        window.__progress = [];
        new MutationObserver(() => {
            const bar = document.querySelector("progress");
            if (bar && window.__progress.at(-1) !== bar.value) window.__progress.push(bar.value);
        }).observe(document.body, {childList: true, subtree: true});
    }""")

    runner = start_runner(tmp_path, GPU_RUNNER_MAX_BATCH_SIZE="8")
    try:
        page.locator("#result-preview").wait_for(state="visible")
    finally:
        runner.terminate()

    seen = page.evaluate("window.__progress")
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("#request-status").inner_text() == "Succeeded"
    # The bar showed at least two values on the way, each further than the one before.
    assert len(seen) >= 2 and all(0 < value < 256 for value in seen), seen
    assert seen == sorted(seen) and len(set(seen)) == len(seen), seen
