"""``live.wait_for_request``: a search's wait for its query's embedding, on the process's single
LISTEN, with the real hub and PostgreSQL's notifications (no database connection held)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from product.inference import live, services
from product.inference.models import RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM

# Transactional: the hub's own connection must see the committed rows and notifications.
pytestmark = pytest.mark.usefixtures("clean_queue")


def _finish(request) -> None:
    services.requests_start(claims=[services.Claim(request.pk, request.job_id)])
    services.requests_finish(outcomes=[services.Outcome(
        request.pk, request.job_id, RequestStatus.SUCCEEDED, output={"dim": 384},
        embeddings=np.ones((1, 384), dtype=np.float32) / np.sqrt(384), compute_ms=1.0,
    )])


def test_the_wait_ends_when_the_request_succeeds_and_holds_no_subscriber_after(make_user):
    alice = make_user("alice")
    request = services.request_submit(user=alice, model=MINILM.name, raw_input=["query"], priority="interactive")

    async def scenario():
        waiting = asyncio.create_task(live.wait_for_request(request.pk, alice.pk, 20))
        await asyncio.sleep(0.3)
        still_waiting = not waiting.done()
        await sync_to_async(_finish)(request)
        return still_waiting, await waiting, live.hub.subscriber_count()

    still_waiting, status, remaining = asyncio.run(scenario())

    assert still_waiting and status == RequestStatus.SUCCEEDED and remaining == 0


def test_the_wait_times_out_and_a_final_request_answers_at_once(make_user):
    alice = make_user("alice")
    request = services.request_submit(user=alice, model=MINILM.name, raw_input=["query"])

    async def timed_out():
        with pytest.raises(TimeoutError):
            await live.wait_for_request(request.pk, alice.pk, 0.5)

    asyncio.run(timed_out())
    services.request_cancel(request=request)
    assert asyncio.run(live.wait_for_request(request.pk, alice.pk, 5)) == RequestStatus.CANCELLED
