"""A batch file through real processes: a 10,000-line upload over HTTP to uvicorn, its parts fed
by the web process's feeder as parts end, run by a real runner, progress read while it runs,
and both downloads streamed back and checked against requests of the same texts."""

import io
import json
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest

from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

LINES = 10_000


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def http(base_url: str, path: str, token: str, *, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
    request = urllib.request.Request(
        base_url + path, data=body, method="POST" if body is not None else "GET",
        headers={"Authorization": token, **({"Content-Type": content_type} if content_type else {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_ten_thousand_line_file_is_uploaded_run_and_downloaded(live_stack, make_user, token_for):
    token = token_for(make_user("alice"))
    # Short texts (the model's time grows with their length); every 1,000th line is bad.
    lines = [
        b"{not json" if n % 1000 == 0 else
        json.dumps({"custom_id": f"c{n}", "body": {"input": f"text {n}"}}).encode() if n % 2 else
        f"text {n}".encode()
        for n in range(1, LINES + 1)
    ]
    body, content_type = multipart({"model": MINILM.name}, "ten-thousand.jsonl", b"\n".join(lines))
    started = time.monotonic()
    status, answer = http(live_stack.base_url, "/api/v1/batches", token, body=body, content_type=content_type)
    uploaded = time.monotonic()
    assert status == 201, answer
    created = json.loads(answer)
    assert created["texts"] == LINES - 10 and created["bad_lines"] == 10
    assert [e["line"] for e in created["line_errors"]] == list(range(1000, LINES + 1, 1000))

    seen_running = False
    deadline = time.monotonic() + 600
    while True:
        batch = json.loads(http(live_stack.base_url, created["url"], token)[1])
        progress = batch["progress"]
        if batch["status"] == "running" and 0 < progress["done"] < batch["texts"]:
            seen_running = True
            assert progress["eta_seconds"] is not None and progress["texts_per_second"] > 0
            # Never more than BATCH_QUEUED_PARTS parts in the queue at once.
            assert progress["parts"]["queued"] + progress["parts"]["running"] <= 8
        if batch["status"] != "running":
            break
        assert time.monotonic() < deadline, batch
        time.sleep(0.5)
    finished = time.monotonic()
    assert batch["status"] == "completed" and progress["done"] == LINES - 10, batch
    assert seen_running

    status, npy = http(live_stack.base_url, created["output_npy_url"], token)
    assert status == 200
    vectors = np.load(io.BytesIO(npy), allow_pickle=False)
    assert vectors.shape == (LINES - 10, MINILM.output_dim) and not np.isnan(vectors).any()
    status, jsonl = http(live_stack.base_url, created["output_jsonl_url"], token)
    out = [json.loads(line) for line in jsonl.splitlines()]
    good = [n for n in range(1, LINES + 1) if n % 1000]
    assert [o["custom_id"] for o in out] == [f"c{n}" if n % 2 else f"line-{n}" for n in good]
    assert np.allclose(out[-1]["response"]["body"]["data"][0]["embedding"], vectors[-1], atol=1e-6)

    # Rows are in input order: the same texts as one request of their own give the same vectors.
    picks = [0, 1, 998, 4321, len(good) - 1]
    status, answer = http(
        live_stack.base_url, "/api/v1/requests", token, content_type="application/json",
        body=json.dumps({"model": MINILM.name, "input": [f"text {good[i]}" for i in picks]}).encode(),
    )
    request = json.loads(answer)
    for _ in range(600):
        request = json.loads(http(live_stack.base_url, request["url"], token)[1])
        if request["status"] == "succeeded":
            break
        time.sleep(0.1)
    result = json.loads(http(live_stack.base_url, request["result_url"], token)[1])
    assert np.allclose(vectors[picks], np.asarray(result["embeddings"]), atol=1e-5)
    print(
        f"\nbatch of {LINES} lines: upload {uploaded - started:.2f} s, run "
        f"{finished - uploaded:.1f} s ({(LINES - 10) / (finished - uploaded):.0f} texts/s end to end)"
    )


def test_a_batch_goes_on_when_its_web_process_is_killed_and_another_starts(
    django_db_blocker, make_user, token_for, tmp_path
):
    """The feeder keeps nothing of its own: with the web process killed mid-batch (SIGKILL),
    the parts that were queued finish, and a new web process's feeder queues the rest."""
    from product.batches.models import BatchPart
    from tests.support.processes import start_runner, start_web

    token = token_for(make_user("alice"))
    with django_db_blocker.unblock():
        runner = start_runner(tmp_path)
        (tmp_path / "web1").mkdir()
        (tmp_path / "web2").mkdir()
        web, base_url = start_web(tmp_path / "web1", BATCH_QUEUED_PARTS="1")
        try:
            runner.wait_for_output("taking jobs from")
            body, content_type = multipart({"model": MINILM.name}, "six-parts.txt", b"\n".join(b"t%d" % n for n in range(1500)))
            status, answer = http(base_url, "/api/v1/batches", token, body=body, content_type=content_type)
            assert status == 201, answer
            created = json.loads(answer)
            deadline = time.monotonic() + 300
            while (batch := json.loads(http(base_url, created["url"], token)[1]))["progress"]["done"] < 256:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            web.popen.kill()
            assert batch["progress"]["parts"]["ended"] < 6  # Killed mid-batch.
            web.terminate()
            web, base_url = start_web(tmp_path / "web2", BATCH_QUEUED_PARTS="1")
            while (batch := json.loads(http(base_url, created["url"], token)[1]))["status"] == "running":
                assert time.monotonic() < deadline, batch
                time.sleep(0.2)
        finally:
            web.terminate()
            runner.terminate()
        assert batch["status"] == "completed" and batch["progress"]["done"] == 1500
        parts = BatchPart.objects.filter(batch_id=created["id"])
        assert parts.count() == 6 and parts.filter(request__status="succeeded").count() == 6
