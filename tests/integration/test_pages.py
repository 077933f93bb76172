"""Server-rendered pages: sign-in required, owner isolation, form validation."""

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest
from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = pytest.mark.django_db


def test_pages_require_sign_in(client):
    response = client.get("/requests/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_submitting_the_form_creates_a_request_per_line_and_redirects(client, make_user):
    client.force_login(make_user("alice"))
    response = client.post("/requests/", {"model": MINILM.name, "text": "first\n\nsecond\n"})
    request = InferenceRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/requests/{request.pk}/"
    assert request.inputs == ["first", "second"]


def test_an_invalid_form_shows_the_problem_and_creates_nothing(client, make_user):
    client.force_login(make_user("alice"))
    jobs_before = ProcrastinateJob.objects.count()
    response = client.post("/requests/", {"model": MINILM.name, "text": "x" * 5000})
    assert response.status_code == 400
    assert "at most 4000" in response.content.decode()
    assert not InferenceRequest.objects.exists()
    assert ProcrastinateJob.objects.count() == jobs_before


def test_users_cannot_see_others_requests_in_pages(client, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    request = services.request_submit(user=alice, model=MINILM.name, raw_input="private words")
    client.force_login(bob)

    assert client.get(f"/requests/{request.pk}/").status_code == 404
    assert client.get(f"/requests/{request.pk}/events").status_code == 404
    assert client.post(f"/requests/{request.pk}/cancel").status_code == 404
    assert "private words" not in client.get("/requests/").content.decode()


def test_staff_see_others_requests(client, make_user):
    request = services.request_submit(user=make_user("alice"), model=MINILM.name, raw_input="words")
    client.force_login(make_user("ops", superuser=True))
    page = client.get(f"/requests/{request.pk}/")
    assert page.status_code == 200 and "alice" in page.content.decode()


def test_procrastinate_admin_shows_the_jobs_to_an_administrator(client, make_user):
    request = services.request_submit(user=make_user("alice"), model=MINILM.name, raw_input="w")
    client.force_login(make_user("root", superuser=True))
    page = client.get(f"/admin/procrastinate/procrastinatejob/{request.job_id}/change/")
    assert page.status_code == 200 and MINILM.queue in page.content.decode()


def test_liveness_answers_probes_from_any_host_over_plain_http():
    from django.test import Client

    response = Client().get("/healthz", HTTP_HOST="10.1.2.3:8000")
    assert response.status_code == 200 and response.content == b"ok"
