"""A person in a real headless Chromium creates an API token on its page, sees the secret
once, and the secret works against the real web process."""

import json
import urllib.request

import pytest

from tests.browser.conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]



@pytest.fixture
def tokens_user(make_user, transactional_db):
    # Created before the browser starts: Playwright's sync API runs an event loop in this
    # thread, where Django refuses synchronous database calls.
    return make_user("tokens-user")


def test_create_a_token_see_its_secret_once_and_use_it(web, tokens_user, page, tmp_path):
    sign_in(page, web, "tokens-user", then="/account/tokens/")
    assert "No tokens yet" in page.content()

    page.fill("#token-form input[name=name]", "laptop")
    page.fill("#token-form input[name=expires_in_days]", "30")
    page.click("#token-form button[type=submit]")

    secret = page.locator("#token-secret").inner_text()
    assert secret.startswith("gq_")
    assert page.locator("#token-table tbody tr").count() == 1
    assert "active" in page.locator("#token-table .token-status").inner_text()
    shot = screenshot(page, "tokens", tmp_path)

    page.goto(f"{web}/account/tokens/")
    assert page.locator("#token-secret").count() == 0 and secret not in page.content()

    request = urllib.request.Request(
        f"{web}/api/v1/requests", headers={"Authorization": f"Bearer {secret}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and json.loads(response.read()) == {"results": [], "next": None}
    assert shot.stat().st_size > 0
