"""Staff access follows Django permissions on requests, not ``is_staff`` alone: seeing every
user's requests needs staff status and ``inference.view_inferencerequest``, acting on another
user's request staff status and ``inference.change_inferencerequest``."""

from __future__ import annotations

import pytest

from product.inference import services
from product.inference.models import InferenceRequest
from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = pytest.mark.django_db

VIEW = "inference.view_inferencerequest"
CHANGE = "inference.change_inferencerequest"


@pytest.fixture
def alices_request(make_user):
    return services.request_submit(
        user=make_user("alice"), model=MINILM.name, raw_input="alice's private words"
    )


def api_as(client, token_for, user):
    headers = {"HTTP_AUTHORIZATION": token_for(user)}
    return lambda method, url: getattr(client, method)(url, **headers)


def test_staff_without_the_view_permission_see_only_their_own_requests(
    client, make_user, token_for, alices_request
):
    staff = make_user("staff", staff=True)
    own = services.request_submit(user=staff, model=MINILM.name, raw_input="staff's words")
    api = api_as(client, token_for, staff)

    listed = api("get", "/api/v1/requests").json()["results"]
    assert [row["id"] for row in listed] == [own.pk]
    assert api("get", f"/api/v1/requests/{alices_request.pk}").status_code == 404

    client.force_login(staff)
    page = client.get("/requests/").content.decode()
    assert "My requests" in page and "All requests" not in page
    assert client.get(f"/requests/{alices_request.pk}/").status_code == 404
    assert client.get("/metrics").status_code == 403


def test_the_view_permission_without_staff_status_shows_only_ones_own_requests(
    client, make_user, token_for, alices_request
):
    user = make_user("granted", perms=[VIEW, CHANGE])
    api = api_as(client, token_for, user)

    assert api("get", "/api/v1/requests").json()["results"] == []
    assert api("get", f"/api/v1/requests/{alices_request.pk}").status_code == 404
    assert api("post", f"/api/v1/requests/{alices_request.pk}/cancel").status_code == 404
    client.force_login(user)
    assert "My requests" in client.get("/requests/").content.decode()


def test_with_the_view_permission_a_user_sees_every_request_and_its_owner(
    client, make_user, token_for, alices_request
):
    ops = make_user("ops", staff=True, perms=[VIEW])
    api = api_as(client, token_for, ops)

    assert [row["id"] for row in api("get", "/api/v1/requests").json()["results"]] == [
        alices_request.pk
    ]
    assert api("get", f"/api/v1/requests/{alices_request.pk}").status_code == 200

    client.force_login(ops)
    page = client.get("/requests/").content.decode()
    assert "All requests" in page and "alice" in page
    detail = client.get(f"/requests/{alices_request.pk}/").content.decode()
    assert "<dt>Owner</dt><dd>alice</dd>" in detail
    assert "request_cancel" not in detail and f"/requests/{alices_request.pk}/cancel" not in detail
    assert client.get("/metrics").status_code == 200


def test_with_view_but_not_change_a_user_cannot_cancel_others_requests(
    client, make_user, token_for, alices_request
):
    ops = make_user("ops", staff=True, perms=[VIEW])
    api = api_as(client, token_for, ops)

    response = api("post", f"/api/v1/requests/{alices_request.pk}/cancel")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert CHANGE in response.json()["error"]["message"]
    client.force_login(ops)
    assert client.post(f"/requests/{alices_request.pk}/cancel").status_code == 403
    assert InferenceRequest.objects.get(pk=alices_request.pk).status == "queued"


def test_with_view_but_not_change_a_user_still_cancels_their_own_requests(
    client, make_user, token_for
):
    ops = make_user("ops", staff=True, perms=[VIEW])
    own = services.request_submit(user=ops, model=MINILM.name, raw_input="mine")

    response = api_as(client, token_for, ops)("post", f"/api/v1/requests/{own.pk}/cancel")

    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_with_the_change_permission_a_user_cancels_others_requests(
    client, make_user, token_for, alices_request
):
    ops = make_user("ops", staff=True, perms=[VIEW, CHANGE])
    client.force_login(ops)
    assert f"/requests/{alices_request.pk}/cancel" in client.get(
        f"/requests/{alices_request.pk}/"
    ).content.decode()

    response = client.post(f"/requests/{alices_request.pk}/cancel")

    assert response.status_code == 302
    assert InferenceRequest.objects.get(pk=alices_request.pk).status == "cancelled"


def test_the_change_permission_without_the_view_permission_shows_nothing_more(
    client, make_user, token_for, alices_request
):
    """Acting on a request starts with seeing it: change alone reveals no one else's."""
    api = api_as(client, token_for, make_user("ops", staff=True, perms=[CHANGE]))

    assert api("post", f"/api/v1/requests/{alices_request.pk}/cancel").status_code == 404
    assert InferenceRequest.objects.get(pk=alices_request.pk).status == "queued"
