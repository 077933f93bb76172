"""The OpenAI-compatible API of a real uvicorn web process with no runner: the test finishes
requests itself, as a runner would. The 202 past the wait limit, idempotent retries, the 413,
and that waiting calls hold no database connection (nor count as live streams)."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from email.message import Message

import numpy as np
import pytest
from django.db import connection
from procrastinate.contrib.django.models import ProcrastinateJob

from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from tests.support.processes import child_database_url, start_web

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def _post(base_url: str, token: str, body: dict, **headers) -> tuple[int, Message, dict]:
    request = urllib.request.Request(
        f"{base_url}/v1/embeddings", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": token, "Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def _finish(request_id: int, tokens: int = 3) -> np.ndarray:
    """Run request ``request_id`` as a runner would: claim it, then store a result (a unit
    vector per input) with its token count; the runner's writes NOTIFY the web."""
    row = InferenceRequest.objects.get(pk=request_id)
    claim = services.Claim(request_id=row.pk, job_id=row.job_id)
    services.requests_start(claims=[claim])
    vectors = np.zeros((row.item_count, MINILM.output_dim), dtype=np.float32)
    vectors[:, 0] = 1.0
    services.requests_finish(outcomes=[services.Outcome(
        request_id=row.pk, job_id=row.job_id, status=RequestStatus.SUCCEEDED,
        output={"dim": MINILM.output_dim}, embeddings=vectors, input_tokens=tokens,
    )])
    return vectors


@pytest.fixture(scope="module")
def impatient_web(django_db_setup, django_db_blocker, tmp_path_factory):
    """A web process that waits 0.2 s for a result, with no runner, and a small body limit."""
    with django_db_blocker.unblock():
        process, base_url = start_web(
            tmp_path_factory.mktemp("impatient"), INFERENCE_INLINE_WAIT="0.2",
            MAX_REQUEST_BODY_BYTES="4096",
        )
    yield base_url
    process.terminate()


def test_past_the_wait_limit_the_call_answers_202_and_the_request_still_runs(
    impatient_web, make_user, token_for
):
    status, headers, body = _post(impatient_web, token_for(make_user()), {"model": MINILM.name, "input": "hi"})
    assert status == 202, body
    row = InferenceRequest.objects.get()
    assert body["id"] == row.pk and body["url"] == headers["Location"] == f"/api/v1/requests/{row.pk}"
    assert body["status"] == "queued" and row.priority == "interactive"
    assert ProcrastinateJob.objects.get(id=row.job_id).status == "todo"  # Still to run.


def test_an_idempotent_retry_returns_the_same_request_and_then_its_result(
    impatient_web, make_user, token_for
):
    token, key = token_for(make_user()), {"Idempotency-Key": "embed-7"}
    body = {"model": MINILM.name, "input": ["one", "two"], "encoding_format": "base64"}
    first = _post(impatient_web, token, body, **key)
    again = _post(impatient_web, token, body, **key)
    assert first[0] == again[0] == 202 and first[2]["id"] == again[2]["id"]
    assert InferenceRequest.objects.count() == 1

    vectors = _finish(first[2]["id"], tokens=5)
    status, _, done = _post(impatient_web, token, body, **key)
    assert status == 200 and InferenceRequest.objects.count() == 1
    assert done["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    decoded = [np.frombuffer(base64.b64decode(item["embedding"]), "<f4") for item in done["data"]]
    np.testing.assert_array_equal(np.array(decoded), vectors)


def test_a_body_over_the_limit_is_a_413_in_openais_shape(impatient_web, make_user, token_for):
    status, _, body = _post(
        impatient_web, token_for(make_user()), {"model": MINILM.name, "input": "x" * 5000}
    )
    assert status == 413 and body["error"]["code"] == "too_large"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert InferenceRequest.objects.count() == 0


WEB_NAME = "one-connection-web"


@pytest.fixture
def one_connection_web(tmp_path_factory):
    """A web process with one pooled connection (taken for at most 1 s before a 503), one
    live stream per user, and a long wait, with no runner."""
    url = child_database_url()
    process, base_url = start_web(
        tmp_path_factory.mktemp("one-connection"), INFERENCE_INLINE_WAIT="60",
        DATABASE_POOL_MAX_SIZE="1", DATABASE_POOL_TIMEOUT="1", INFERENCE_STREAMS_PER_USER="1",
        DATABASE_URL=f"{url}{'&' if '?' in url else '?'}application_name={WEB_NAME}",
    )
    yield base_url
    process.terminate()


def _backends() -> int:
    """The web process's connections to the database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [WEB_NAME])
        return cursor.fetchone()[0]


def test_waiting_calls_hold_no_database_connection(one_connection_web, make_user, token_for):
    token, calls = token_for(make_user()), 6
    answers: list = [None] * calls

    def call(index: int) -> None:
        answers[index] = _post(one_connection_web, token, {"model": MINILM.name, "input": f"text {index}"})

    threads = [threading.Thread(target=call, args=(index,)) for index in range(calls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while InferenceRequest.objects.count() < calls and time.monotonic() < deadline:
        time.sleep(0.05)
    # Longer than a call waits for the one connection before its 503: had a waiting call kept
    # it, the others would have failed by now. The web holds its pooled one and its LISTEN.
    time.sleep(1.5)
    assert 1 <= _backends() <= 2
    assert all(answer is None for answer in answers)  # All of them still waiting.
    for row in InferenceRequest.objects.all():
        _finish(row.pk)
    for thread in threads:
        thread.join(60)
    assert [answer[0] for answer in answers] == [200] * calls, answers
    assert all(len(answer[2]["data"]) == 1 for answer in answers)
