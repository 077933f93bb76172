"""Fair turns: a request's priority (API, form, defaults by size), and, through the real runner
worker, the real model and real PostgreSQL, another user's small requests do not wait behind
one user's bulk backlog."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django import db
from django.db import connection
from procrastinate.contrib.django import app
from procrastinate.contrib.django.models import ProcrastinateJob

from gpu_runner import runtime
from gpu_runner.inference import InferenceHandler
from gpu_runner.runner import Runner
from product.inference import services
from product.inference.jobs import INTERACTIVE_JOB_PRIORITY, JOB_PRIORITY
from product.inference.models import InferenceRequest, RequestPriority, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM

BACKLOG_REQUESTS = 40
URL = "/api/v1/requests"


def submit(client, headers, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **headers)


@pytest.fixture
def auth(make_user, token_for):
    return {"HTTP_AUTHORIZATION": token_for(make_user("alice"))}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("texts", "asked", "priority"),
    [
        (1, None, "interactive"),
        (16, None, "interactive"),  # INFERENCE_INTERACTIVE_MAX_TEXTS
        (17, None, "bulk"),
        (1, "bulk", "bulk"),
        (200, "interactive", "interactive"),
    ],
)
def test_a_request_is_interactive_up_to_a_few_texts_unless_it_says_otherwise(
    client, auth, texts, asked, priority
):
    body = {"model": MINILM.name, "input": [f"text {n}" for n in range(texts)]}
    if asked is not None:
        body["priority"] = asked

    response = submit(client, auth, body)

    assert response.status_code == 201
    assert response.json()["priority"] == priority
    row = InferenceRequest.objects.get(pk=response.json()["id"])
    job = ProcrastinateJob.objects.get(pk=row.job_id)
    assert row.priority == priority and job.priority == JOB_PRIORITY[priority]
    assert job.args == {"request_id": row.pk, "owner": row.owner_id, "texts": texts}


@pytest.mark.django_db
@pytest.mark.parametrize("priority", ["urgent", "", 1, ["bulk"]])
def test_an_unknown_priority_is_400_naming_the_allowed_ones_and_creates_nothing(
    client, auth, priority
):
    response = submit(client, auth, {"model": MINILM.name, "input": "x", "priority": priority})

    assert response.status_code == 400
    assert "priority must be one of: interactive, bulk" in response.json()["error"]["message"]
    assert not InferenceRequest.objects.exists() and not ProcrastinateJob.objects.exists()


@pytest.mark.django_db
def test_the_form_submits_a_chosen_priority_and_the_pages_show_it(client, make_user):
    client.force_login(make_user("alice"))
    page = client.get("/requests/")
    assert 'name="priority"' in page.content.decode()

    response = client.post("/requests/", {"model": MINILM.name, "text": "one\ntwo", "priority": "bulk"})

    row = InferenceRequest.objects.get()
    assert response.status_code == 302 and row.priority == "bulk"
    assert "Bulk" in client.get(f"/requests/{row.pk}/").content.decode()
    assert "Bulk" in client.get("/requests/?partial=table").content.decode()


@pytest.mark.django_db
def test_the_openapi_document_describes_the_priority(client):
    document = client.get("/api/openapi.json").json()
    request = document["components"]["schemas"]["Request"]["properties"]
    assert request["priority"] == {"enum": ["interactive", "bulk"]}


@pytest.fixture
def minilm_runtime(settings, monkeypatch):
    settings.GPU_RUNNER_MODELS = [MINILM.name]
    settings.GPU_RUNNER_MAX_BATCH_SIZE = 16
    settings.GPU_RUNNER_MAX_BATCH_TOKENS = 1024
    monkeypatch.setattr(runtime, "_current", None)
    return runtime.load_runtime()


def run_while_b_submits(user_b) -> list[InferenceRequest]:
    """Run a runner on A's backlog; once it has started on it, B submits a one-text request and
    three of four texts; returns B's requests when they have all finished."""
    handler = InferenceHandler(runtime.current_runtime())

    async def work() -> list[InferenceRequest]:
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                runner = Runner(
                    app=app, queues=[MINILM.queue], handlers=[handler], capacity=256,
                    heartbeat_interval=5.0, shutdown_grace=0.1,
                    poll_interval=0.05, max_held_texts=64, urgent_priority=INTERACTIVE_JOB_PRIORITY,
                )
                task = asyncio.ensure_future(runner.run(install_signal_handlers=False))
                started = InferenceRequest.objects.filter(status=RequestStatus.RUNNING).exists
                while not await sync_to_async(started)():
                    await asyncio.sleep(0.01)
                submit = sync_to_async(services.request_submit)
                mine = [await submit(user=user_b, model=MINILM.name, raw_input="B's one text.")]
                for n in range(3):
                    texts = [f"B's text {n}.{k}, one of four." for k in range(4)]
                    mine.append(await submit(user=user_b, model=MINILM.name, raw_input=texts))
                pending = InferenceRequest.objects.filter(
                    pk__in=[r.pk for r in mine], finished_at__isnull=True).exists
                while await sync_to_async(pending)():
                    await asyncio.sleep(0.01)
                runner.stop()  # A's rest goes back to the queue.
                await task
        await sync_to_async(db.connections.close_all)()
        return mine

    return asyncio.run(work())


@pytest.mark.usefixtures("clean_queue")
def test_another_users_small_requests_finish_before_half_of_a_bulk_backlog(
    make_user, minilm_runtime
):
    user_a, user_b = make_user("alice"), make_user("bob")
    backlog = [
        services.request_submit(
            user=user_a, model=MINILM.name, priority="bulk",
            raw_input=[f"Alice's bulk text {n}.{k} about rivers and trains." for k in range(16)],
        )
        for n in range(BACKLOG_REQUESTS)
    ]

    mine = [InferenceRequest.objects.get(pk=r.pk) for r in run_while_b_submits(user_b)]

    assert [r.status for r in mine] == [RequestStatus.SUCCEEDED] * 4
    assert {r.priority for r in mine} == {RequestPriority.INTERACTIVE}  # By size.
    b_done = max(r.finished_at for r in mine)
    a_done_before = InferenceRequest.objects.filter(
        pk__in=[r.pk for r in backlog], status=RequestStatus.SUCCEEDED, finished_at__lt=b_done
    ).count()
    assert a_done_before < BACKLOG_REQUESTS // 2


@pytest.mark.django_db
def test_a_requeued_request_keeps_its_priority_owner_and_texts_on_its_new_job(make_user):
    request = services.request_submit(
        user=make_user("alice"), model=MINILM.name, raw_input=["a", "b"], priority="bulk"
    )
    InferenceRequest.objects.filter(pk=request.pk).update(status=RequestStatus.FAILED)

    requeued = services.request_requeue(request=request)

    job = ProcrastinateJob.objects.get(pk=requeued.job_id)
    assert requeued.job_id != request.job_id and job.priority == JOB_PRIORITY["bulk"]
    assert job.args == {"request_id": request.pk, "owner": request.owner_id, "texts": 2}


@pytest.mark.usefixtures("clean_queue")
def test_a_job_deferred_before_fair_turns_with_only_its_request_id_still_runs(
    make_user, minilm_runtime
):
    from tests.support.worker import drain

    request = services.request_submit(user=make_user("alice"), model=MINILM.name, raw_input="old")
    with connection.cursor() as cursor:  # As the web deferred jobs before they named more.
        cursor.execute(
            "UPDATE procrastinate_jobs SET args = jsonb_build_object('request_id', %s), "
            "priority = 0 WHERE id = %s", [request.pk, request.job_id],
        )

    drain([MINILM.queue])

    assert InferenceRequest.objects.get(pk=request.pk).status == RequestStatus.SUCCEEDED
