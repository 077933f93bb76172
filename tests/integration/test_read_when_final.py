"""``live.read_when_final``, the one inline wait (a search's query embedding, POST
/v1/embeddings), with the real hub and PostgreSQL's notifications: it reads again when the
request is finished by someone else, gives up after its timeout, and answers at once for a
request already final."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.inference import live, services
from product.inference.models import FINAL_STATUSES, InferenceRequest, RequestStatus

# Transactional: the hub's own connection must see the committed rows and notifications.
pytestmark = pytest.mark.usefixtures("clean_queue")


def _status(request_id: int) -> str:
    return InferenceRequest.objects.get(pk=request_id).status


def _final(status: str) -> bool:
    return status in FINAL_STATUSES


def _finish(request) -> None:
    services.requests_start(claims=[services.Claim(request.pk, request.job_id)])
    services.requests_finish(outcomes=[services.Outcome(
        request.pk, request.job_id, RequestStatus.SUCCEEDED, output={"dim": 384},
        embeddings=np.ones((1, 384), dtype=np.float32) / np.sqrt(384), compute_ms=1.0,
    )])


def test_the_wait_reads_again_when_the_request_succeeds_and_leaves_no_waiter(make_user):
    request = services.request_submit(user=make_user("alice"), model=MINILM.name, raw_input=["query"])

    async def scenario():
        waiting = asyncio.create_task(live.read_when_final(request.pk, _status, final=_final, timeout=20))
        await asyncio.sleep(0.3)
        still_waiting = not waiting.done()
        await sync_to_async(_finish)(request)
        return still_waiting, await waiting, live.hub.watch_count()

    still_waiting, outcome, waiters_left = asyncio.run(scenario())

    assert still_waiting and outcome == (RequestStatus.SUCCEEDED, True) and waiters_left == 0


def test_the_wait_gives_up_after_its_timeout_and_a_final_request_answers_at_once(make_user):
    request = services.request_submit(user=make_user("alice"), model=MINILM.name, raw_input=["query"])

    assert asyncio.run(live.read_when_final(request.pk, _status, final=_final, timeout=0.5)) == (
        RequestStatus.QUEUED, False,
    )
    services.request_cancel(request=request)
    assert asyncio.run(live.read_when_final(request.pk, _status, final=_final, timeout=5)) == (
        RequestStatus.CANCELLED, True,
    )
