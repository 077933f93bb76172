"""Fair turns through the real runner worker, the real model and real PostgreSQL: another
user's small requests do not wait behind one user's bulk backlog."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django import db
from procrastinate.contrib.django import app

from gpu_runner import runtime
from gpu_runner.worker import Runner
from product.inference import services
from product.inference.jobs import INTERACTIVE_JOB_PRIORITY
from product.inference.models import InferenceRequest, RequestPriority, RequestStatus
from product.inference.specs import MINILM

pytestmark = pytest.mark.usefixtures("clean_queue")

BACKLOG_REQUESTS = 40


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
    from gpu_runner.tasks import RUNNER_HOOKS

    async def work() -> list[InferenceRequest]:
        with app.replace_connector(app.connector.get_worker_connector()):
            async with app.open_async():
                runner = Runner(
                    app=app, queues=[MINILM.queue], name="test-fair", capacity=256,
                    heartbeat_interval=5.0, shutdown_grace=0.1, hooks=RUNNER_HOOKS,
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
