"""A live page in a real headless Chromium keeps updating across streams that end at their
maximum age: the browser reconnects by itself and the next change still appears."""

import json
import time
import urllib.request

import pytest

from product.inference import services
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.browser.conftest import sign_in
from tests.support.processes import start_web

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

MAX_AGE = 2.0


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    process, base_url = start_web(tmp_path_factory.mktemp("web"), INFERENCE_STREAM_MAX_AGE=str(MAX_AGE))
    yield base_url
    process.terminate()


@pytest.fixture
def watched(make_user, token_for):
    # Made before the browser starts: Playwright's sync API runs an event loop in this thread,
    # where Django refuses synchronous database calls.
    alice = make_user("alice")
    request = services.request_submit(user=alice, model=MINILM.name, raw_input="watch me")
    return request, token_for(alice)


def test_a_live_page_still_updates_after_its_streams_reach_their_maximum_age(web, watched, page):
    request, token = watched
    sign_in(page, web, "alice")
    opened = []
    page.on("request", lambda r: opened.append(r.url) if r.url.endswith("/events") else None)
    page.goto(f"{web}/requests/{request.pk}/")
    page.evaluate("window.__sameDocument = true")
    assert page.locator("#request-status").inner_text() == "Queued"

    deadline = time.monotonic() + 30
    while len(opened) < 3:  # The first stream, and two after streams ended at their maximum age.
        assert time.monotonic() < deadline, f"the page opened only {opened}"
        page.wait_for_timeout(200)

    cancel = urllib.request.Request(
        f"{web}/api/v1/requests/{request.pk}/cancel", data=json.dumps({}).encode(), method="POST",
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(cancel, timeout=10) as response:
        assert response.status == 200
    page.locator("#request-status", has_text="Cancelled").wait_for()
    assert page.evaluate("window.__sameDocument") is True
