"""A person in a real headless Chromium picks each of the other models on the requests page,
fills that model's own form, and sees its result shown by the model's own fragment."""

import pytest

from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


@pytest.fixture
def alice(make_user):
    return make_user("alice")  # Before the browser starts (see tests/browser/conftest.py).


def test_pairs_are_scored_through_the_similarity_form(live_stack, alice, page, tmp_path):
    sign_in(page, live_stack.base_url, "alice")
    page.click("#model-all-minilm-l6-v2-similarity")
    page.wait_for_url("**/requests/?model=all-minilm-l6-v2-similarity")
    page.fill("textarea[name=text]", "A cat sits on the mat. | A kitten rests on a rug.\n"
                                     "A cat sits on the mat. | Stock markets fell sharply today.")
    page.screenshot(path=tmp_path / "similarity-form.png", full_page=True)
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/requests/*/")

    page.locator("#result-preview").wait_for(state="visible")
    page.screenshot(path=tmp_path / "similarity-result.png", full_page=True)

    rows = page.locator("#result-preview table.scores tbody tr")
    assert rows.count() == 2
    first, second = (float(rows.nth(i).locator("td.mono").inner_text()) for i in range(2))
    assert first > second
    assert page.locator("dt", has_text="Pairs").is_visible()


def test_texts_are_ranked_by_the_labels_given_in_the_zero_shot_form(live_stack, alice, page, tmp_path):
    sign_in(page, live_stack.base_url, "alice")
    page.click("#model-all-minilm-l6-v2-zero-shot")
    page.wait_for_url("**/requests/?model=all-minilm-l6-v2-zero-shot")
    page.fill("textarea[name=text]", "Shares fell after the bank raised interest rates.\n"
                                     "Whisk the eggs, then fold in the flour.")
    page.fill("input[name=labels]", "sports, finance, cooking")
    page.screenshot(path=tmp_path / "zero-shot-form.png", full_page=True)
    page.click("#submit-form button[type=submit]")
    page.wait_for_url("**/requests/*/")

    page.locator("#result-preview").wait_for(state="visible")
    page.screenshot(path=tmp_path / "zero-shot-result.png", full_page=True)

    best = page.locator("#result-preview ol.labels li:first-child strong")
    assert best.all_inner_texts() == ["finance", "cooking"]
