"""Sign-in is throttled after repeated failures per user name and per client address: beyond
the limit the page answers 429 with Retry-After without checking the password."""

from __future__ import annotations

import pytest
from django.contrib.auth.signals import user_login_failed
from django.db import connection

from product.accounts.models import SignInFailure

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture
def limits(settings):
    settings.SIGNIN_MAX_FAILURES = 3
    settings.SIGNIN_MAX_FAILURES_PER_ADDRESS = 5
    settings.SIGNIN_FAILURE_WINDOW = 900
    return settings


def sign_in(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(client, username: str, times: int, address: str = "10.0.0.1") -> None:
    for _ in range(times):
        assert sign_in(client, username, "wrong-password", address).status_code == 200


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def age_failures(seconds: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_signinfailure SET at = at - make_interval(secs => %s)", [seconds]
        )


def test_after_too_many_failures_even_the_right_password_gets_429_with_retry_after(
    client, alice, limits
):
    fail(client, "alice", 3)

    response = sign_in(client, "alice", "alice-Secret-123")

    assert response.status_code == 429
    assert 890 <= int(response["Retry-After"]) <= 900
    assert "Too many failed sign-ins. Wait 15 minutes" in response.content.decode()
    assert not signed_in(client)


def test_a_throttled_attempt_does_not_check_the_password_and_is_not_counted(
    client, alice, limits
):
    fail(client, "alice", 3)
    checked = []
    user_login_failed.connect(lambda **kwargs: checked.append(kwargs), dispatch_uid="probe")
    try:
        response = sign_in(client, "alice", "wrong-password")
    finally:
        user_login_failed.disconnect(dispatch_uid="probe")

    assert response.status_code == 429
    assert checked == []
    assert SignInFailure.objects.filter(username="alice").count() == 3


def test_failures_below_the_limit_still_let_the_right_password_in(client, alice, limits):
    fail(client, "alice", 2)

    response = sign_in(client, "alice", "alice-Secret-123")

    assert response.status_code == 302 and signed_in(client)


def test_a_successful_sign_in_clears_the_user_names_failures(client, alice, limits):
    fail(client, "alice", 2)
    sign_in(client, "alice", "alice-Secret-123")
    client.logout()

    fail(client, "alice", 2)
    response = sign_in(client, "alice", "alice-Secret-123")

    assert response.status_code == 302 and signed_in(client)


def test_variants_of_a_user_name_count_as_that_name(client, alice, limits):
    """The form strips white space and NFKC-normalises the name before authenticating."""
    fail(client, " alice", 1)
    fail(client, "ａｌｉｃｅ", 2)  # Full-width letters.

    assert sign_in(client, "alice", "alice-Secret-123").status_code == 429


def test_failures_leave_the_window_by_the_databases_clock(client, alice, limits):
    fail(client, "alice", 3)
    age_failures(600)
    wait = int(sign_in(client, "alice", "alice-Secret-123")["Retry-After"])
    assert 290 <= wait <= 300

    age_failures(300)
    response = sign_in(client, "alice", "alice-Secret-123")

    assert response.status_code == 302 and signed_in(client)


def test_one_address_is_throttled_across_user_names_and_others_are_not(
    client, alice, make_user, limits
):
    make_user("bob")
    for name in ("carol", "dave", "erin", "frank", "grace"):
        fail(client, name, 1, address="10.0.0.66")

    assert sign_in(client, "bob", "bob-Secret-123", address="10.0.0.66").status_code == 429
    response = sign_in(client, "bob", "bob-Secret-123", address="10.0.0.7")
    assert response.status_code == 302 and signed_in(client)


def test_a_throttled_user_name_is_throttled_from_every_address(client, alice, limits):
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        fail(client, "alice", 1, address=address)

    assert sign_in(client, "alice", "alice-Secret-123", address="10.0.0.9").status_code == 429
