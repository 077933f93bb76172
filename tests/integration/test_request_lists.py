"""A user's own lists: filters, search and cursor pages in the API and on the page; "run
again" of their own failed or cancelled requests; how much work is ahead of a queued one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.quotas.models import UserQuota

pytestmark = pytest.mark.django_db

URL = "/api/v1/requests"


def submit(user, texts, **kwargs) -> InferenceRequest:
    return services.request_submit(user=user, model=MINILM.name, raw_input=texts, **kwargs)


def listed(client, auth, query: str = "") -> list[int]:
    response = client.get(f"{URL}?{query}", **auth)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_filters_select_by_status_priority_and_text_and_never_show_anothers(client, auth, alice, make_user):
    cat = submit(alice, ["A Cat on the mat", "rain"])
    dog = submit(alice, ["a dog"], priority="bulk")
    quoted = submit(alice, ['50% "quoted" (text)'])
    InferenceRequest.objects.filter(pk=dog.pk).update(status=RequestStatus.FAILED, error="CUDA out of memory")
    submit(make_user("bob"), ["a cat of bob's"])

    assert listed(client, auth, "q=cat") == [cat.pk]  # Case ignored; bob's cat not shown.
    assert listed(client, auth, 'q=50% "quoted" (') == [quoted.pk]  # Taken literally.
    assert listed(client, auth, "status=failed") == [dog.pk]
    assert listed(client, auth, "status=failed,queued") == [quoted.pk, dog.pk, cat.pk]
    assert listed(client, auth, "priority=bulk") == [dog.pk]
    assert listed(client, auth, "error=out+of+MEMORY") == [dog.pk]
    assert listed(client, auth, f"model={MINILM.name}&status=queued") == [quoted.pk, cat.pk]


def test_date_range_includes_both_days(client, auth, alice):
    old, new = submit(alice, ["old"]), submit(alice, ["new"])
    InferenceRequest.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    today = timezone.localdate()

    assert listed(client, auth, f"from={today}") == [new.pk]
    assert listed(client, auth, f"to={today - timedelta(days=1)}") == [old.pk]
    assert listed(client, auth, f"from={today - timedelta(days=3)}&to={today}") == [new.pk, old.pk]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=done", "status must be one of: queued"),
        ("priority=urgent", "priority must be one of: interactive, bulk"),
        ("model=nope", "model must be a known model"),
        ("from=yesterday", "from must be a date, YYYY-MM-DD"),
        ("from=2026-02-02&to=2026-02-01", "ends (to) before it starts (from)"),
        ("q=" + "x" * 201, "q must be at most 200 characters"),
        ("before=0", "before must be at least 1"),
        ("before=x", "before must be an integer"),
    ],
)
def test_a_bad_filter_is_400_naming_the_parameter(client, auth, query, message):
    response = client.get(f"{URL}?{query}", **auth)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_next_links_walk_every_page_once_newest_first_keeping_the_filters(client, auth, alice):
    mine = [submit(alice, [f"text {n}"]).pk for n in range(5)]
    submit(alice, ["other"], priority="bulk")

    seen, url = [], f"{URL}?limit=2&priority=interactive"
    while url:
        page = client.get(url, **auth).json()
        seen += [row["id"] for row in page["results"]]
        if len(seen) == 2:
            submit(alice, ["submitted between pages"])  # Does not shift the next page.
        url = page["next"]
        assert url is None or ("priority=interactive" in url and "limit=2" in url)

    assert seen == mine[::-1]


def test_staff_filter_by_owner_and_others_cannot(client, make_user, token_for, alice):
    bob = make_user("bob")
    alices, bobs = submit(alice, ["a"]), submit(bob, ["b"])
    staff = {"HTTP_AUTHORIZATION": token_for(make_user("ops", superuser=True))}

    assert listed(client, staff, "owner=bob") == [bobs.pk]
    assert listed(client, staff) == [bobs.pk, alices.pk]
    # A user's list is their own whatever they ask for.
    assert listed(client, {"HTTP_AUTHORIZATION": token_for(alice)}, "owner=bob") == [alices.pk]


def test_run_again_submits_a_failed_request_anew_and_keeps_the_old(client, auth, alice):
    failed = submit(alice, ["one", "two"], priority="bulk")
    InferenceRequest.objects.filter(pk=failed.pk).update(status=RequestStatus.FAILED, error="boom")

    response = client.post(f"{URL}/{failed.pk}/run-again", **auth)

    assert response.status_code == 201
    again = InferenceRequest.objects.get(pk=response.json()["id"])
    assert again.pk != failed.pk and response["Location"] == f"{URL}/{again.pk}"
    assert (again.status, again.inputs, again.priority, again.job_id is not None) == (
        "queued", ["one", "two"], "bulk", True,
    )
    assert InferenceRequest.objects.get(pk=failed.pk).status == RequestStatus.FAILED


def test_run_again_only_for_ones_own_failed_or_cancelled_and_within_limits(client, auth, alice, make_user, token_for):
    queued = submit(alice, ["still queued"])
    assert client.post(f"{URL}/{queued.pk}/run-again", **auth).status_code == 409

    bobs = submit(make_user("bob"), ["bob's"])
    InferenceRequest.objects.filter(pk=bobs.pk).update(status=RequestStatus.FAILED)
    assert client.post(f"{URL}/{bobs.pk}/run-again", **auth).status_code == 404
    staff = {"HTTP_AUTHORIZATION": token_for(make_user("ops", superuser=True))}
    forbidden = client.post(f"{URL}/{bobs.pk}/run-again", **staff)
    assert forbidden.status_code == 403 and "only they may run it again" in forbidden.json()["error"]["message"]

    services.request_cancel(request=queued)
    UserQuota.objects.update_or_create(user=alice, defaults={"max_queued_texts": 0})
    before = InferenceRequest.objects.count()
    refused = client.post(f"{URL}/{queued.pk}/run-again", **auth)
    assert refused.status_code == 400 and "max_queued_texts" in refused.json()["error"]["message"]
    assert InferenceRequest.objects.count() == before


def test_a_queued_request_says_how_much_is_ahead_of_it(client, auth, alice, make_user):
    bob = make_user("bob")
    running = submit(alice, ["r"] * 10, priority="bulk")
    InferenceRequest.objects.filter(pk=running.pk).update(status=RequestStatus.RUNNING, items_done=4)
    earlier_bulk = submit(bob, ["b"] * 3, priority="bulk")
    mine = submit(alice, ["m"] * 2, priority="bulk")
    submit(bob, ["i"], priority="interactive")  # Submitted later, but runs first.
    submit(bob, ["later"] * 5, priority="bulk")  # Behind mine.

    ahead = client.get(f"{URL}/{mine.pk}", **auth).json()["ahead"]

    # The running one (6 texts left), the earlier bulk one (3), the interactive one (1).
    assert ahead == {"requests": 3, "texts": 6 + 3 + 1}
    assert "ahead" not in client.get(f"{URL}/{running.pk}", **auth).json()
    assert earlier_bulk.pk < mine.pk


def test_the_page_filters_pages_and_runs_again(client, alice):
    client.force_login(alice)
    failed = submit(alice, ["needle in a haystack"])
    InferenceRequest.objects.filter(pk=failed.pk).update(status=RequestStatus.FAILED)
    for n in range(51):
        submit(alice, [f"hay {n}"])

    first = client.get("/requests/").content.decode()
    assert 'id="next-page"' in first and f"/requests/{failed.pk}/" not in first
    found = client.get("/requests/?q=NEEDLE").content.decode()
    assert f"/requests/{failed.pk}/" in found and 'id="next-page"' not in found
    assert "No requests match" in client.get("/requests/?q=nothing-like-it").content.decode()
    assert "Not filtered: from must be a date" in client.get("/requests/?from=soon").content.decode()

    detail = client.get(f"/requests/{failed.pk}/").content.decode()
    assert 'id="run-again"' in detail
    response = client.post(f"/requests/{failed.pk}/run-again")
    again = InferenceRequest.objects.latest("id")
    assert response.status_code == 302 and response["Location"] == f"/requests/{again.pk}/"
    assert again.inputs == ["needle in a haystack"]
    page = client.get(f"/requests/{again.pk}/").content.decode()
    assert "About 51 texts in 51 requests of this model are ahead of this one." in page
