"""A person in a real headless Chromium uploads a batch file, watches its progress advance
without a reload (the request list's live stream), and downloads its results."""

import json

import numpy as np
import pytest

from tests.browser.conftest import screenshot, sign_in
from tests.support.processes import start_runner

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

LINES = 3000


@pytest.fixture
def alice(make_user):
    return make_user("alice")  # Before the browser starts (see test_live_page).


def test_upload_a_batch_watch_it_progress_live_and_download_it(web, alice, page, tmp_path):
    sign_in(page, web, "alice", then="/batches/")
    lines = [f"sentence number {n}" for n in range(1, LINES + 1)]
    lines[41] = '{"custom_id": "broken", "body": {"input": 3}}'  # line 42: not a text
    upload = tmp_path / "sentences.txt"
    upload.write_text("\n".join(lines) + "\n")
    page.set_input_files("input[name=file]", str(upload))
    page.click("#batch-form button[type=submit]")
    page.wait_for_url("**/batches/*/")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#batch-status").inner_text() == "Running"
    assert f"0 of {LINES - 1}" in page.locator("#batch-done").inner_text()
    assert "line 42" not in page.locator("#line-errors").inner_text()  # numbers sit in cells
    assert page.locator("#line-errors td").first.inner_text() == "42"
    page.evaluate("""() => {
        window.__done = [];
        new MutationObserver(() => {
            const done = document.querySelector("#batch-done");
            if (done && window.__done.at(-1) !== done.textContent) window.__done.push(done.textContent);
        }).observe(document.body, {childList: true, subtree: true});
    }""")

    runner = start_runner(tmp_path)
    try:
        page.wait_for_function(
            "() => (window.__done.at(-1) || '').startsWith('1') || window.__done.length > 1",
            timeout=120_000,
        )
        screenshot(page, "batch-running", tmp_path)
        page.locator("#batch-status", has_text="Completed").wait_for(timeout=300_000)
    finally:
        runner.terminate()

    assert page.evaluate("window.__sameDocument") is True
    seen = page.evaluate("window.__done")
    # The count of texts done moved through values between none and all, live.
    assert any(not s.startswith("0 of") and not s.startswith(f"{LINES - 1} of") for s in seen), seen
    assert page.locator("#batch-done").inner_text() == f"{LINES - 1} of {LINES - 1}"
    screenshot(page, "batch-completed", tmp_path)

    with page.expect_download() as download:
        page.click("#download-npy")
    vectors = np.load(download.value.path())
    assert vectors.shape == (LINES - 1, 384) and not np.isnan(vectors).any()
    with page.expect_download() as download:
        page.click("#download-jsonl")
    out = [json.loads(line) for line in download.value.path().read_text().splitlines()]
    assert len(out) == LINES - 1 and out[41]["custom_id"] == "line-43"

    page.goto(f"{web}/batches/")
    assert page.locator("#batch-table tbody tr").count() == 1
    screenshot(page, "batch-list", tmp_path)
