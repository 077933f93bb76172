"""Batch jobs from files through the API: uploads read line by line into parts, bad lines
reported by number, parts fed a few at a time as ordinary bulk requests and run by the real
runner (the drain helper), progress, downloads (JSONL and .npy, in input order), cancel, and
who sees what."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.batches import services
from product.batches.models import Batch, BatchPart, BatchStatus
from product.batches.urls import UPLOAD_PATHS
from product.inference.models import InferenceRequest, RequestPriority, RequestStatus
from product.quotas.models import UserQuota
from tests.support.worker import drain

URL = "/api/v1/batches"


def upload(client, auth, content: bytes, *, model: str | None = MINILM.name, name: str = "batch.jsonl"):
    data = {"file": SimpleUploadedFile(name, content)}
    if model is not None:
        data["model"] = model
    return client.post(URL, data, **auth)


def openai_line(custom_id: str, text, **body) -> bytes:
    return orjson.dumps({
        "custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
        "body": {"input": text, "model": MINILM.name, **body},
    })


def run_to_the_end(batch_id: int, *, max_rounds: int = 1000) -> Batch:
    """Feed and drain until the batch is no longer running (as the web's feeder and a runner
    would)."""
    for _ in range(max_rounds):
        services.batches_feed()
        batch = Batch.objects.get(pk=batch_id)
        if batch.status != BatchStatus.RUNNING:
            return batch
        drain([MINILM.queue])
    raise AssertionError(f"batch {batch_id} is still running")


def get(client, auth, path):
    response = client.get(path, **auth)
    return response.status_code, response


def npy_of(response) -> np.ndarray:
    return np.load(io.BytesIO(b"".join(response.streaming_content)), allow_pickle=False)


def jsonl_of(response) -> list[dict]:
    return [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]


@pytest.mark.usefixtures("clean_queue")
def test_a_mixed_file_runs_in_parts_and_downloads_in_input_order(client, auth):
    plain = [f"plain text {i}" for i in range(300)]
    lines = [*(text.encode() for text in plain[:150]), openai_line("pair", ["first of two", "second of two"]),
             b"", *(text.encode() for text in plain[150:])]
    with override_settings(BATCH_QUEUED_PARTS=1):
        response = upload(client, auth, b"\n".join(lines) + b"\n")
        assert response.status_code == 201, response.content
        created = response.json()
        assert created["texts"] == 302 and created["requests"] == 301 and created["bad_lines"] == 0
        assert created["lines"] == 302  # The blank line is counted, not read.
        # Two parts of whole lines (256 at most); only one queued at a time.
        parts = BatchPart.objects.filter(batch_id=created["id"]).order_by("index")
        assert [p.text_count for p in parts] == [256, 46]
        assert [p.request_id is not None for p in parts] == [True, False]
        first = parts[0].request
        assert first.priority == RequestPriority.BULK and first.item_count == 256
        batch = run_to_the_end(created["id"])
    assert batch.status == BatchStatus.COMPLETED and batch.finished_at is not None

    status, detail = get(client, auth, created["url"])
    progress = detail.json()["progress"]
    assert progress["done"] == 302 and progress["left"] == 0 and progress["percent"] == 100
    assert progress["texts_per_second"] > 0 and progress["eta_seconds"] is None

    status, response = get(client, auth, created["output_npy_url"])
    assert status == 200 and response["Content-Disposition"].endswith('.npy"')
    vectors = npy_of(response)
    assert vectors.shape == (302, MINILM.output_dim) and vectors.dtype == np.float32
    assert int(response["Content-Length"]) == len(
        b"".join(get(client, auth, created["output_npy_url"])[1].streaming_content)
    )
    texts = plain[:150] + ["first of two", "second of two"] + plain[150:]
    # Row i is text i: each equals the embedding of that text in a request of its own.
    rows = [0, 150, 151, 301]
    assert np.allclose(vectors[rows], _embeddings_of(batch.owner, [texts[i] for i in rows]), atol=1e-5)

    status, response = get(client, auth, created["output_jsonl_url"])
    out = jsonl_of(response)
    assert [line["custom_id"] for line in out] == [
        *(f"line-{n}" for n in range(1, 151)), "pair", *(f"line-{n}" for n in range(153, 303))
    ]
    pair = out[150]
    assert pair["error"] is None and pair["response"]["status_code"] == 200
    data = pair["response"]["body"]["data"]
    assert [item["index"] for item in data] == [0, 1]
    assert np.allclose(data[1]["embedding"], vectors[151], atol=1e-6)
    assert np.allclose(out[0]["response"]["body"]["data"][0]["embedding"], vectors[0], atol=1e-6)


def _embeddings_of(user, texts: list[str]) -> np.ndarray:
    from product.inference import services as inference_services
    from product.inference.results import request_embeddings

    request = inference_services.request_submit(user=user, model=MINILM.name, raw_input=texts)
    drain([MINILM.queue])
    request.refresh_from_db()
    return request_embeddings(request)


@pytest.mark.usefixtures("clean_queue")
def test_bad_lines_are_reported_by_number_and_the_rest_run(client, auth):
    lines = [
        b"good one",                                             # 1
        b'{"body": {"input": "x"',                               # 2 not JSON
        openai_line("c3", "fine json"),                          # 3
        b'{"custom_id": "c4", "url": "/v1/chat/completions", "body": {"input": "x"}}',  # 4
        b"\xff\xfe not utf-8",                                   # 5
        openai_line("c6", ""),                                   # 6 empty text
        b"x" * (MINILM.max_chars + 1),                           # 7 too long
        openai_line("c8", "other model", model="nope"),          # 8
        b'{"custom_id": "c9", "body": {"input": "y", "dimensions": 3}}',  # 9 unknown field
        b"last good",                                            # 10
    ]
    response = upload(client, auth, b"\n".join(lines))
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["texts"] == 3 and created["bad_lines"] == 7
    errors = {e["line"]: e["message"] for e in created["line_errors"]}
    assert sorted(errors) == [2, 4, 5, 6, 7, 8, 9]
    assert "not valid JSON" in errors[2]
    assert "/v1/embeddings" in errors[4]
    assert "UTF-8" in errors[5]
    assert "empty" in errors[6]
    assert str(MINILM.max_chars) in errors[7]
    assert "'nope'" in errors[8] and "one model" in errors[8]
    assert "body.dimensions" in errors[9]

    run_to_the_end(created["id"])
    status, response = get(client, auth, created["output_jsonl_url"])
    assert [line["custom_id"] for line in jsonl_of(response)] == ["line-1", "c3", "line-10"]
    status, detail = get(client, auth, created["url"])
    assert detail.json()["status"] == "completed" and detail.json()["progress"]["done"] == 3


@override_settings(BATCH_MAX_LINE_ERRORS=3)
def test_bad_lines_are_all_counted_but_only_the_first_stored(client, auth, db):
    content = b"\n".join([b"ok"] + [b"{bad" for _ in range(10)])
    created = upload(client, auth, content).json()
    assert created["bad_lines"] == 10
    assert [e["line"] for e in created["line_errors"]] == [2, 3, 4]


@pytest.mark.parametrize(
    ("content", "model", "message"),
    [
        (b"", MINILM.name, "the file is empty"),
        (b"\n\n  \n", MINILM.name, "the file is empty"),
        (b"{bad\n{worse\n", MINILM.name, "line 1: not valid JSON"),
        (b"text", "no-such-model", "no-such-model"),
        (b"text", "all-minilm-l6-v2-similarity", "does not return embeddings"),
        (b"plain text, no model anywhere", None, "name the model"),
    ],
)
def test_an_upload_that_cannot_be_a_batch_is_a_400_and_creates_nothing(client, auth, db, content, model, message):
    response = upload(client, auth, content, model=model)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_input"
    assert message in response.json()["error"]["message"]
    assert not Batch.objects.exists() and not BatchPart.objects.exists()
    assert not InferenceRequest.objects.exists()


def test_the_model_may_be_named_by_the_first_line(client, auth, db):
    response = upload(client, auth, openai_line("a", "one") + b"\nplain two\n", model=None)
    assert response.status_code == 201 and response.json()["model"] == MINILM.name
    assert response.json()["texts"] == 2


@override_settings(BATCH_MAX_TEXTS=5)
def test_more_texts_than_allowed_is_refused_whole(client, auth, db):
    response = upload(client, auth, b"\n".join(b"t%d" % i for i in range(6)))
    assert response.status_code == 400
    assert "more than 5 texts (line 6)" in response.json()["error"]["message"]
    assert not Batch.objects.exists() and not InferenceRequest.objects.exists()


def test_uploads_need_a_file_in_a_multipart_body_and_a_token(client, auth, db):
    response = client.post(URL, b"text", content_type="text/plain", **auth)
    assert response.status_code == 415 and "multipart/form-data" in response.json()["error"]["message"]
    response = client.post(URL, {"model": MINILM.name}, **auth)
    assert response.status_code == 400 and "'file' is required" in response.json()["error"]["message"]
    response = client.post(URL, {"file": SimpleUploadedFile("a.txt", b"x")})
    assert response.status_code == 401
    assert not Batch.objects.exists()


def test_the_upload_paths_are_the_urlconf_s():
    assert set(UPLOAD_PATHS) == {reverse("batches:batch_list"), reverse("batches_api:batches")}


def test_a_line_longer_than_a_request_body_is_a_bad_line_not_held(settings, client, auth, db):
    settings.MAX_REQUEST_BODY_BYTES = 64
    content = b"short\n" + b"y" * 500 + b"\nafter\n"
    created = upload(client, auth, content).json()
    assert created["texts"] == 2
    assert created["line_errors"] == [{"line": 2, "message": "longer than 64 bytes."}]


def test_file_lines_reads_lines_across_chunks(monkeypatch):
    monkeypatch.setattr(services, "_READ_CHUNK", 3)
    lines = list(services.file_lines(io.BytesIO(b"ab\r\ncdefgh\n\nlast"), max_bytes=4))
    assert lines == [b"ab\r", None, b"", b"last"]


@pytest.mark.usefixtures("clean_queue")
def test_the_queued_texts_limit_holds_parts_back_without_refusing_the_batch(client, alice, auth):
    UserQuota.objects.create(user=alice, max_queued_texts=300)
    created = upload(client, auth, b"\n".join(b"t%d" % i for i in range(600))).json()
    # 600 texts, more than the limit: the batch is accepted; one part of 256 fits, not two.
    assert created["progress"]["parts"] == {"total": 3, "queued": 1, "running": 0, "ended": 0}
    batch = run_to_the_end(created["id"])
    assert batch.status == BatchStatus.COMPLETED
    assert get(client, auth, created["url"])[1].json()["progress"]["done"] == 600


@pytest.mark.usefixtures("clean_queue")
def test_cancel_stops_the_waiting_parts_and_keeps_the_finished(client, auth):
    with override_settings(BATCH_QUEUED_PARTS=1):
        created = upload(client, auth, b"\n".join(b"t%d" % i for i in range(600))).json()
        drain([MINILM.queue])  # Part 0 runs.
        services.batches_feed()  # Part 1 is queued.
    response = client.post(created["cancel_url"], **auth)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    statuses = list(
        BatchPart.objects.filter(batch_id=created["id"]).order_by("index").values_list("request__status", flat=True)
    )
    assert statuses == [RequestStatus.SUCCEEDED, RequestStatus.CANCELLED, None]
    services.batches_feed()
    assert BatchPart.objects.filter(batch_id=created["id"], request__isnull=False).count() == 2
    progress = get(client, auth, created["url"])[1].json()["progress"]
    assert (progress["done"], progress["cancelled"], progress["left"]) == (256, 344, 0)

    vectors = npy_of(get(client, auth, created["output_npy_url"])[1])
    assert vectors.shape == (600, MINILM.output_dim)
    assert not np.isnan(vectors[:256]).any() and np.isnan(vectors[256:]).all()
    assert len(jsonl_of(get(client, auth, created["output_jsonl_url"])[1])) == 256

    again = client.post(created["cancel_url"], **auth)
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_users_see_only_their_own_batches_and_staff_see_all(client, alice, auth, make_user, token_for, db):
    created = upload(client, auth, b"mine").json()
    bob = {"HTTP_AUTHORIZATION": token_for(make_user("bob"))}
    for path in (created["url"], created["output_jsonl_url"], created["output_npy_url"]):
        assert client.get(path, **bob).status_code == 404
    assert client.post(created["cancel_url"], **bob).status_code == 404
    assert client.get(URL, **bob).json()["results"] == []
    assert [b["id"] for b in client.get(URL, **auth).json()["results"]] == [created["id"]]

    viewer = make_user("viewer", staff=True, perms=["inference.view_inferencerequest"])
    staff = {"HTTP_AUTHORIZATION": token_for(viewer)}
    assert client.get(created["url"], **staff).status_code == 200
    assert [b["id"] for b in client.get(URL, **staff).json()["results"]] == [created["id"]]
    # Seeing is not changing: cancelling another's batch needs the change permission.
    assert client.post(created["cancel_url"], **staff).status_code == 403
    operator = make_user("operator", staff=True, perms=[
        "inference.view_inferencerequest", "inference.change_inferencerequest",
    ])
    response = client.post(created["cancel_url"], HTTP_AUTHORIZATION=token_for(operator))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_the_batch_pages_upload_show_and_cancel(client, alice, db):
    client.force_login(alice)
    response = client.post(
        reverse("batches:batch_list"),
        {"file": SimpleUploadedFile("page.txt", b"one\n{oops\ntwo\n"), "model": MINILM.name},
    )
    assert response.status_code == 302
    batch = Batch.objects.get()
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "0 of 2" in html and "page.txt" in html and "1 bad" in html and "not valid JSON" in html
    assert client.get(reverse("batches:batch_list")).content.decode().count("page.txt") == 1
    assert client.post(reverse("batches:batch_cancel", args=[batch.pk])).status_code == 302
    batch.refresh_from_db()
    assert batch.status == BatchStatus.CANCELLED
    empty = client.post(reverse("batches:batch_list"), {"file": SimpleUploadedFile("e.txt", b"\n"), "model": MINILM.name})
    assert empty.status_code == 400 and "no text to embed" in empty.content.decode()


@pytest.mark.usefixtures("clean_queue")
def test_a_failed_part_is_reported_in_the_downloads_and_the_rest_runs(client, auth):
    from product.inference import services as inference_services

    created = upload(client, auth, b"\n".join(b"t%d" % i for i in range(300))).json()
    first = BatchPart.objects.get(batch_id=created["id"], index=0).request
    claim = inference_services.Claim(first.pk, first.job_id)
    inference_services.requests_start(claims=[claim])
    inference_services.requests_finish(outcomes=[inference_services.Outcome(
        first.pk, first.job_id, RequestStatus.FAILED, error="the model ran out of memory",
    )])
    batch = run_to_the_end(created["id"])
    assert batch.status == BatchStatus.COMPLETED

    progress = get(client, auth, created["url"])[1].json()["progress"]
    assert (progress["done"], progress["failed"], progress["left"]) == (44, 256, 0)
    out = jsonl_of(get(client, auth, created["output_jsonl_url"])[1])
    assert len(out) == 300
    assert out[0]["response"] is None
    assert out[0]["error"] == {"code": "inference_failed", "message": "the model ran out of memory"}
    assert out[256]["error"] is None and out[256]["custom_id"] == "line-257"
    vectors = npy_of(get(client, auth, created["output_npy_url"])[1])
    assert np.isnan(vectors[:256]).all() and not np.isnan(vectors[256:]).any()


def test_parts_fit_a_queued_texts_limit_smaller_than_the_model_s_max(client, alice, auth, db):
    UserQuota.objects.create(user=alice, max_queued_texts=100)
    content = b"\n".join([b"t%d" % i for i in range(250)] + [openai_line("big", ["x"] * 101)])
    created = upload(client, auth, content).json()
    assert [p.text_count for p in BatchPart.objects.filter(batch_id=created["id"]).order_by("index")] == [100, 100, 50]
    assert created["line_errors"] == [
        {"line": 251, "message": "101 texts, more than the 100 you may have queued at once (max_queued_texts)."}
    ]
    UserQuota.objects.filter(user=alice).update(max_queued_texts=0)
    response = upload(client, auth, b"t")
    assert response.status_code == 400 and "max_queued_texts is 0" in response.json()["error"]["message"]


def test_only_batches_a_feed_would_change_are_looked_at(client, auth, db):
    from product.batches.selectors import batches_to_feed

    with override_settings(BATCH_QUEUED_PARTS=1):
        full = upload(client, auth, b"\n".join(b"t%d" % i for i in range(300))).json()
    done = upload(client, auth, b"one").json()
    Batch.objects.filter(pk=done["id"]).update(status=BatchStatus.COMPLETED)
    assert batches_to_feed(queued_parts=1) == []  # One part queued, the most allowed.
    assert batches_to_feed(queued_parts=2) == [full["id"]]


@pytest.mark.usefixtures("clean_queue")
def test_pruning_a_batch_s_requests_leaves_the_batch_without_those_results(client, auth):
    from datetime import timedelta

    from product.inference import retention

    created = upload(client, auth, b"one\ntwo").json()
    run_to_the_end(created["id"])
    InferenceRequest.objects.update(finished_at=InferenceRequest.objects.get().finished_at - timedelta(days=2))
    retention.requests_prune(older_than=timedelta(days=1))
    assert not InferenceRequest.objects.exists()
    assert BatchPart.objects.get(batch_id=created["id"]).request_id is None  # SET NULL, in PostgreSQL
    vectors = npy_of(get(client, auth, created["output_npy_url"])[1])
    assert vectors.shape == (2, MINILM.output_dim) and np.isnan(vectors).all()
    assert jsonl_of(get(client, auth, created["output_jsonl_url"])[1]) == []
    assert get(client, auth, created["url"])[1].json()["progress"]["left"] == 0


def test_the_list_pages_newest_first_with_a_cursor(client, auth, db):
    ids = [upload(client, auth, b"text %d" % n).json()["id"] for n in range(3)]
    first = client.get(URL + "?limit=2", **auth).json()
    assert [b["id"] for b in first["results"]] == ids[:0:-1]
    second = client.get(first["next"], **auth).json()
    assert [b["id"] for b in second["results"]] == ids[:1] and second["next"] is None
    response = client.get(URL + "?limit=0", **auth)
    assert response.status_code == 400 and "between 1 and 200" in response.json()["error"]["message"]
