"""An operator in a real headless Chromium: the operations page updates by itself as requests
finish, and requeueing the failed requests of a group makes them run again; a user without the
permission gets a 403."""

import pytest
from django.db.models.functions import Now

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.browser.conftest import screenshot, sign_in
from tests.support.processes import start_runner

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


@pytest.fixture
def failed(make_user):
    # Made before the browser starts: Playwright's sync API runs an event loop in this thread,
    # where Django refuses synchronous database calls.
    make_user("ops", staff=True, perms=["inference.view_inferencerequest", "inference.change_inferencerequest"])
    make_user("dave")
    alice = make_user("alice")
    requests = [
        services.request_submit(user=alice, model=MINILM.name, raw_input=[f"text {n}", "again"])
        for n in range(3)
    ]
    InferenceRequest.objects.filter(pk__in=[r.pk for r in requests]).update(
        status=RequestStatus.FAILED, error="CUDA out of memory (tried 12 MiB)", finished_at=Now()
    )
    return requests


def test_requeue_a_failure_group_and_watch_it_run_without_a_reload(web, failed, page, tmp_path):
    sign_in(page, web, "ops", then="/ops/")
    assert "CUDA out of memory" in page.locator("#failure-groups").inner_text()
    runner = start_runner(tmp_path)
    try:
        runner.wait_for_output("taking jobs from")
        page.locator("#runners .state-live").wait_for()  # Its report arrived by itself.
        page.click("#failure-groups .requeue-group button")
        page.wait_for_url("**/ops/actions")
        assert "Requeue 3 requests?" in page.locator("#confirm h1").inner_text()
        page.click("#confirm-action")
        page.wait_for_url("**/ops/")
        page.evaluate("window.__sameDocument = true")
        page.locator("#failure-groups", has_text="No failures to look at").wait_for()
        page.locator("#queue-depth", has_text="Nothing queued or running").wait_for()
        page.locator("#audit", has_text="3 of 3").wait_for()
        screenshot(page, "ops", tmp_path)
    finally:
        runner.terminate()
    assert page.evaluate("window.__sameDocument") is True


def test_a_user_without_the_permission_gets_403(web, failed, page):
    sign_in(page, web, "dave")
    response = page.goto(f"{web}/ops/")
    assert response.status == 403


@pytest.fixture
def operator_token(make_user, token_for):
    make_user("ops", staff=True, perms=["inference.view_inferencerequest", "inference.change_inferencerequest"])
    return token_for(make_user("erin"))


def test_pausing_stops_intake_and_resuming_starts_it_again(web, operator_token, page, tmp_path):
    import json
    import time
    import urllib.request

    def api(path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{web}/api/v1/{path}", data=body and json.dumps(body).encode(),
            headers={"Authorization": operator_token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    sign_in(page, web, "ops", then="/ops/")
    runner = start_runner(tmp_path)
    try:
        runner.wait_for_output("taking jobs from")
        page.click("#model-queues .pause-queue button")
        page.wait_for_url("**/ops/")
        assert "paused" in page.locator("#model-queues").inner_text()
        submitted = api("requests", {"model": MINILM.name, "input": "wait for the resume"})
        time.sleep(3)  # Several of the runner's polls and wake-ups: none may take it.
        assert api(f"requests/{submitted['id']}")["status"] == "queued"
        page.locator("#runners .state-paused").wait_for()
        screenshot(page, "ops-paused", tmp_path)

        page.click("#model-queues .resume-queue button")
        page.wait_for_url("**/ops/")
        deadline = time.monotonic() + 60
        while api(f"requests/{submitted['id']}")["status"] != "succeeded":
            assert time.monotonic() < deadline, "the resumed queue's request did not run"
            time.sleep(0.2)
    finally:
        runner.terminate()
