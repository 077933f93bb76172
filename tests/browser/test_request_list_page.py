"""A person in a real headless Chromium finds a request of theirs by its text, pages through
their list, and runs a failed request again."""

import pytest

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.browser.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]



@pytest.fixture
def failed(make_user):
    # Made before the browser starts: Playwright's sync API runs an event loop in this thread,
    # where Django refuses synchronous database calls.
    carol = make_user("carol")
    for n in range(55):
        services.request_submit(user=carol, model=MINILM.name, raw_input=f"hay {n}")
    failed = services.request_submit(user=carol, model=MINILM.name, raw_input=["a Needle", "thread"])
    InferenceRequest.objects.filter(pk=failed.pk).update(status=RequestStatus.FAILED, error="boom")
    return failed


def test_filter_page_and_run_a_failed_request_again(web, failed, page, tmp_path):
    sign_in(page, web, "carol")
    assert page.locator("#request-table tbody tr").count() == 50
    page.click("#next-page")
    assert page.locator("#request-table tbody tr").count() == 6

    page.goto(f"{web}/requests/")
    page.fill("#filter-form input[name=q]", "needle")
    page.select_option("#filter-form select[name=status]", "failed")
    page.click("#filter-form button[type=submit]")
    page.wait_for_url("**/requests/?*q=needle*")
    rows = page.locator("#request-table tbody tr")
    assert rows.count() == 1 and "Failed" in rows.first.inner_text()
    screenshot(page, "request-list-filtered", tmp_path)

    rows.first.locator("a").click()
    page.wait_for_url(f"**/requests/{failed.pk}/")
    page.click("#run-again")
    page.wait_for_url("**/requests/*/")
    assert page.url.rstrip("/").rsplit("/", 1)[-1] != str(failed.pk)
    assert page.locator("#request-status").inner_text() == "Queued"
    assert "ahead of this one" in page.locator("#work-ahead").inner_text()
    screenshot(page, "request-queued", tmp_path)
