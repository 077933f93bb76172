"""Users list, create (the secret shown once), rename and revoke their own API tokens on a page;
the API refuses expired and revoked tokens; the admin cannot see secrets or re-point tokens."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from product.accounts import services
from product.accounts.models import ApiToken

pytestmark = pytest.mark.django_db

PAGE = "/account/tokens/"


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def secret_on(page: str) -> str | None:
    found = re.search(r'id="token-secret">(gq_[^<]+)<', page)
    return found.group(1) if found else None


def api_status(client, secret: str) -> tuple[int, dict]:
    response = client.get("/api/v1/requests", HTTP_AUTHORIZATION=f"Bearer {secret}")
    return response.status_code, response.json()


def test_the_page_needs_a_sign_in(client):
    response = client.get(PAGE)

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_creating_a_token_shows_its_secret_once_and_the_secret_works(client, signed_in, alice):
    response = signed_in.post(PAGE, {"name": "laptop", "expires_in_days": ""})

    page = response.content.decode()
    secret = secret_on(page)
    assert response.status_code == 200 and secret is not None
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=alice)
    assert token.name == "laptop" and token.expires_at is None and secret.startswith(token.prefix)
    assert secret not in token.digest  # Only the digest is stored.
    again = signed_in.get(PAGE).content.decode()
    assert secret_on(again) is None and secret not in again
    assert "laptop" in again and f"{token.prefix}…" in again
    assert api_status(client, secret)[0] == 200


def test_a_token_created_with_an_expiry_expires_that_many_days_later_by_the_databases_clock(
    signed_in, alice
):
    signed_in.post(PAGE, {"name": "ci", "expires_in_days": "30"})

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT expires_at - now() FROM accounts_apitoken WHERE user_id = %s", [alice.pk]
        )
        (left,) = cursor.fetchone()
    assert 29.99 < left.total_seconds() / 86400 < 30.01


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": ""}, "This field is required"),
        ({"name": "x" * 101}, "at most 100 characters"),
        ({"name": "ci", "expires_in_days": "0"}, "greater than or equal to 1"),
        ({"name": "ci", "expires_in_days": "soon"}, "Enter a whole number"),
    ],
)
def test_an_invalid_token_form_gets_400_naming_the_problem_and_creates_nothing(
    signed_in, form, message
):
    response = signed_in.post(PAGE, form)

    assert response.status_code == 400 and message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_list_shows_only_the_users_own_tokens(signed_in, alice, make_user):
    services.token_create(user=alice, name="mine")
    services.token_create(user=make_user("bob"), name="bobs-token")

    page = signed_in.get(PAGE).content.decode()

    assert "mine" in page and "bobs-token" not in page


def test_a_user_renames_their_token(signed_in, alice):
    token, _ = services.token_create(user=alice, name="old")

    response = signed_in.post(f"{PAGE}{token.pk}/rename", {"name": "new name"})

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.name == "new name"


def test_a_revoked_token_is_refused_by_the_api_saying_so(client, signed_in, alice):
    token, secret = services.token_create(user=alice, name="leaked")

    response = signed_in.post(f"{PAGE}{token.pk}/revoke")

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api_status(client, secret) == (
        401, {"error": {"code": "unauthenticated", "message": "the API token was revoked."}}
    )
    assert "revoked" in signed_in.get(PAGE).content.decode()


def test_an_expired_token_is_refused_by_the_api_saying_so(client, alice):
    token, secret = services.token_create(user=alice, name="short-lived", expires_in_days=1)
    with connection.cursor() as cursor:  # A day later, by the database's clock.
        cursor.execute(
            "UPDATE accounts_apitoken SET expires_at = now() - interval '1 second' WHERE id = %s",
            [token.pk],
        )

    assert api_status(client, secret) == (
        401, {"error": {"code": "unauthenticated", "message": "the API token has expired."}}
    )


def test_a_token_not_yet_expired_still_works(client, alice):
    _, secret = services.token_create(user=alice, name="ci", expires_in_days=1)

    assert api_status(client, secret)[0] == 200


@pytest.mark.parametrize("action", ["rename", "revoke"])
def test_another_users_token_cannot_be_renamed_or_revoked(signed_in, make_user, action):
    token, secret = services.token_create(user=make_user("bob"), name="bobs-token")

    response = signed_in.post(f"{PAGE}{token.pk}/{action}", {"name": "taken over"})

    assert response.status_code == 404
    token.refresh_from_db()
    assert token.name == "bobs-token" and token.revoked_at is None


def test_the_token_forms_need_the_csrf_token(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True, HTTP_X_FORWARDED_PROTO="https")
    strict.force_login(alice)
    token, _ = services.token_create(user=alice, name="ci")

    assert strict.post(PAGE, {"name": "x"}).status_code == 403
    assert strict.post(f"{PAGE}{token.pk}/revoke").status_code == 403
    assert ApiToken.objects.filter(revoked_at__isnull=True).count() == 1


def test_the_admin_shows_no_secret_and_cannot_re_point_a_token(client, make_user, alice):
    token, secret = services.token_create(user=alice, name="ci")
    bob = make_user("bob")
    client.force_login(make_user("root", superuser=True))
    url = f"/admin/accounts/apitoken/{token.pk}/change/"

    page = client.get(url).content.decode()
    assert token.digest not in page and secret not in page
    assert 'name="user"' not in page
    client.post(url, {"name": "renamed", "user": bob.pk, "expires_at_0": "", "expires_at_1": ""})

    token.refresh_from_db()
    assert token.name == "renamed" and token.user == alice
    assert client.get("/admin/accounts/apitoken/add/").status_code == 403
