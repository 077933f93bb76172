"""Per-user quotas and rate limits (product.quotas) on real PostgreSQL: a submit over a limit
gets 429 with Retry-After and a message naming the limit, and creates nothing; the bucket
refills by PostgreSQL's clock; an operator's override in the admin raises or lowers one user's
limits; concurrent submits of one user never get past a limit together."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.quotas.models import UserQuota
from product.quotas.services import QUEUED_TEXTS_RETRY_AFTER, LimitExceeded

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    """Set the default limits for the test: ``limits(max_queued_texts=…, …)``."""

    def set_limits(*, max_queued_texts=1000, submits_per_minute=60, submit_burst=100):
        settings.INFERENCE_MAX_QUEUED_TEXTS = max_queued_texts
        settings.INFERENCE_SUBMITS_PER_MINUTE = submits_per_minute
        settings.INFERENCE_SUBMIT_BURST = submit_burst

    set_limits()
    return set_limits


def _counts() -> tuple[int, int]:
    return InferenceRequest.objects.count(), ProcrastinateJob.objects.count()


def _post(client, auth: str, texts):
    return client.post(
        "/api/v1/requests", {"model": MINILM.name, "input": texts},
        content_type="application/json", HTTP_AUTHORIZATION=auth,
    )


def _age_bucket(user, seconds: float) -> None:
    """Move the user's last bucket write ``seconds`` into the past (instead of sleeping)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE quotas_userquota SET bucket_updated_at = bucket_updated_at "
            "- make_interval(secs => %s) WHERE user_id = %s",
            [seconds, user.pk],
        )


def test_a_submit_past_the_burst_gets_429_with_retry_after_and_creates_nothing(
    client, make_user, token_for, limits
):
    limits(submits_per_minute=6, submit_burst=2)
    auth = token_for(make_user())
    assert [_post(client, auth, ["a"]).status_code for _ in range(2)] == [201, 201]
    before = _counts()

    response = _post(client, auth, ["a"])

    assert response.status_code == 429
    assert response["Retry-After"] == "10"  # One token of 6 a minute: 10 s.
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert "6 submits per minute, bursts of 2" in error["message"]
    assert "submits_per_minute" in error["message"] and "10 s" in error["message"]
    assert _counts() == before


def test_the_bucket_refills_by_the_databases_clock(client, make_user, token_for, limits):
    limits(submits_per_minute=60, submit_burst=1)
    alice = make_user()
    auth = token_for(alice)
    assert _post(client, auth, ["a"]).status_code == 201
    assert _post(client, auth, ["a"]).status_code == 429

    _age_bucket(alice, 1.5)  # 1.5 s at 60 a minute: one token back, and no more than one.

    assert _post(client, auth, ["a"]).status_code == 201
    assert _post(client, auth, ["a"]).status_code == 429


def test_the_bucket_never_holds_more_than_its_burst(client, make_user, token_for, limits):
    limits(submits_per_minute=60, submit_burst=3)
    alice = make_user()
    auth = token_for(alice)
    assert _post(client, auth, ["a"]).status_code == 201

    _age_bucket(alice, 3600)  # An hour quiet refills 3600 tokens, capped at the burst of 3.

    assert [_post(client, auth, ["a"]).status_code for _ in range(4)] == [201, 201, 201, 429]


def test_queued_texts_past_the_limit_get_429_naming_the_limit_and_numbers(
    client, make_user, token_for, limits
):
    limits(max_queued_texts=5)
    alice = make_user()
    auth = token_for(alice)
    first = _post(client, auth, ["a", "b", "c"])
    assert first.status_code == 201
    before = _counts()

    response = _post(client, auth, ["d", "e", "f"])

    assert response.status_code == 429
    assert response["Retry-After"] == str(QUEUED_TEXTS_RETRY_AFTER)
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "at most 5 texts queued or running (max_queued_texts)" in error["message"]
    assert "you have 3 and this request adds 3" in error["message"]
    assert _counts() == before

    # Finished work no longer counts; running work counts its texts not done yet.
    InferenceRequest.objects.filter(pk=first.json()["id"]).update(
        status=RequestStatus.RUNNING, items_done=2
    )
    assert _post(client, auth, ["d", "e", "f", "g"]).status_code == 201
    assert _post(client, auth, ["h"]).status_code == 429


def test_a_request_over_the_queued_texts_limit_on_its_own_is_refused_for_good(
    client, make_user, token_for, limits
):
    limits(max_queued_texts=5)
    before = _counts()

    response = _post(client, token_for(make_user()), ["x"] * 6)

    # Waiting cannot help, so no 429 a client would retry for ever.
    assert response.status_code == 400 and "Retry-After" not in response
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "this request has 6 texts, more than the 5 texts" in error["message"]
    assert "split it" in error["message"]
    assert _counts() == before


def test_a_refused_submit_costs_no_token(make_user, limits):
    limits(max_queued_texts=3, submits_per_minute=1, submit_burst=2)
    alice = make_user()
    first = services.request_submit(user=alice, model=MINILM.name, raw_input=["a", "b", "c"])
    for _ in range(3):  # Over the queued texts: refused, and the token goes back.
        with pytest.raises(LimitExceeded, match="max_queued_texts"):
            services.request_submit(user=alice, model=MINILM.name, raw_input=["d"])
    services.request_cancel(request=first)

    services.request_submit(user=alice, model=MINILM.name, raw_input=["d"])  # The 2nd token.

    with pytest.raises(LimitExceeded, match="submits_per_minute"):
        services.request_submit(user=alice, model=MINILM.name, raw_input=["e"])


def test_limits_are_per_user(client, make_user, token_for, limits):
    limits(max_queued_texts=2, submit_burst=1)
    alice, bob = token_for(make_user("alice")), token_for(make_user("bob"))
    assert _post(client, alice, ["a", "b"]).status_code == 201
    assert _post(client, alice, ["c"]).status_code == 429

    assert _post(client, bob, ["a", "b"]).status_code == 201


def test_an_admin_override_raises_and_lowers_one_users_limits(
    client, make_user, token_for, limits
):
    limits(max_queued_texts=4, submit_burst=100)
    alice, bob = make_user("alice"), make_user("bob")
    client.force_login(make_user("root", superuser=True))

    response = client.post(
        "/admin/quotas/userquota/add/",
        {"user": alice.pk, "max_queued_texts": 10, "submits_per_minute": "", "submit_burst": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _post(client, token_for(alice), ["x"] * 8).status_code == 201
    assert _post(client, token_for(bob), ["x"] * 8).status_code == 400  # Bob has the default.

    client.post(
        f"/admin/quotas/userquota/{alice.pk}/change/",
        {"max_queued_texts": 10, "submits_per_minute": 60, "submit_burst": 1},
    )
    quota = UserQuota.objects.get(user=alice)
    assert quota.submit_burst == 1 and quota.bucket_tokens is not None  # Bucket kept.
    assert _post(client, token_for(alice), ["x"]).status_code == 201  # The bucket now holds 1.
    response = _post(client, token_for(alice), ["x"])
    assert response.status_code == 429 and "bursts of 1" in response.json()["error"]["message"]


def test_the_admin_cannot_move_a_quota_to_another_user(client, make_user, limits):
    alice, bob = make_user("alice"), make_user("bob")
    UserQuota.objects.create(user=alice, max_queued_texts=7)
    client.force_login(make_user("root", superuser=True))

    client.post(
        f"/admin/quotas/userquota/{alice.pk}/change/", {"user": bob.pk, "max_queued_texts": 9}
    )

    assert UserQuota.objects.get().user == alice
    assert UserQuota.objects.get().max_queued_texts == 9


def test_the_page_shows_a_refused_submit_and_creates_nothing(client, make_user, limits):
    limits(submit_burst=1)
    client.force_login(make_user())
    form = {"model": MINILM.name, "text": "one\ntwo", "priority": ""}
    assert client.post("/requests/", form).status_code == 302
    before = _counts()

    response = client.post("/requests/", form)

    assert response.status_code == 429 and response["Retry-After"] == "1"
    assert "rate limit: at most 60 submits per minute, bursts of 1" in response.content.decode()
    assert _counts() == before


def test_the_usage_page_shows_a_users_own_usage_and_limits(client, make_user, limits):
    limits(max_queued_texts=900, submits_per_minute=1, submit_burst=7)
    alice, bob = make_user("alice"), make_user("bob")
    done = services.request_submit(user=alice, model=MINILM.name, raw_input=["a", "b"])
    services.request_cancel(request=done)
    services.request_submit(user=alice, model=MINILM.name, raw_input=["c", "d", "e"])
    services.request_submit(user=bob, model=MINILM.name, raw_input=["x"] * 11)
    client.force_login(alice)

    page = client.get("/account/usage/").content.decode()

    assert "3 of 900 texts (1 request)" in page
    assert "5 texts in 2 requests" in page
    assert "5 of 7, refilled by 1 a minute" in page
    assert "bob" not in page and "Everyone" not in page


def test_the_usage_page_of_an_operator_shows_everyones(client, make_user, limits):
    from django.contrib.auth.models import Permission

    alice, bob = make_user("alice"), make_user("bob")
    UserQuota.objects.create(user=make_user("carol"), max_queued_texts=5)  # No work, own limit.
    make_user("dave")  # Nothing at all: not listed.
    services.request_submit(user=bob, model=MINILM.name, raw_input=["x"] * 11)
    operator = make_user("operator", staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_inferencerequest"))
    client.force_login(operator)

    page = client.get("/account/usage/").content.decode()

    assert "Everyone" in page
    assert "<td>bob</td>" in page and "<td>11</td>" in page
    assert "carol <span" in page and "alice" not in page and "dave" not in page


def test_the_api_answers_a_users_own_usage_and_limits(client, make_user, token_for, limits):
    limits(max_queued_texts=900, submits_per_minute=1, submit_burst=7)
    alice = make_user("alice")
    services.request_submit(user=alice, model=MINILM.name, raw_input=["a", "b"])
    services.request_submit(user=make_user("bob"), model=MINILM.name, raw_input=["x"] * 11)

    response = client.get("/api/v1/usage", HTTP_AUTHORIZATION=token_for(alice))

    assert response.json() == {
        "queued_requests": 1, "queued_texts": 2, "requests_this_month": 1,
        "texts_this_month": 2, "submits_available": 6,
        "limits": {"max_queued_texts": 900, "submits_per_minute": 1, "submit_burst": 7},
    }


def test_the_openapi_document_describes_the_limits_and_the_idempotency_key(client):
    submit = client.get("/api/openapi.json").json()["paths"]["/api/v1/requests"]["post"]

    assert "Retry-After" in submit["responses"]["429"]["headers"]
    assert {"200", "422"} <= set(submit["responses"])
    assert submit["parameters"][0]["name"] == "Idempotency-Key"


def test_the_usage_page_needs_sign_in(client):
    response = client.get("/account/usage/")

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_of_one_user_never_pass_the_queued_texts_limit(
    make_user, limits, clean_queue
):
    """Eight submits of 3 texts at once against a limit of 10: exactly three pass."""
    limits(max_queued_texts=10)
    alice = make_user()
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def submit() -> None:
        start.wait()
        try:
            services.request_submit(user=alice, model=MINILM.name, raw_input=["a", "b", "c"])
            outcomes.append("created")
        except LimitExceeded as error:
            outcomes.append(error.limit)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["created"] * 3 + ["max_queued_texts"] * 5
    assert InferenceRequest.objects.filter(owner=alice).count() == 3
