"""PostgreSQL restarts under load: the web answers 503 while it is down, runners keep their
models and reconnect, and every accepted request completes once it is back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.test import Client

from product.inference import results
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support import database
from tests.support.processes import start_runner, start_web

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

TEXTS = [f"Sentence {n} about a database that restarts." for n in range(8)]


def http(base_url: str, path: str, token: str, body: dict | None = None, cookie: str = "") -> tuple[int, dict | str]:
    headers = {"Authorization": token, "Content-Type": "application/json"}
    if cookie:
        headers = {"Cookie": cookie}
    request = urllib.request.Request(
        base_url + path, data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if response.headers.get_content_type() == "application/json" else text
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, json.loads(text) if error.headers.get_content_type() == "application/json" else text


def test_a_database_restart_during_load_loses_nothing(make_user, token_for, tmp_path, capsys):
    server = database.embedded_server()
    user = make_user("alice")
    token = token_for(user)
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    runner = start_runner(tmp_path, GPU_RUNNER_HEARTBEAT_INTERVAL="0.5", GPU_RUNNER_CONCURRENCY="8",
                          GPU_RUNNER_MAX_BATCH_SIZE="8")
    web, base_url = start_web(tmp_path)
    try:
        runner.wait_for_output("taking jobs from")
        ids = []
        for _ in range(150):
            status, body = http(base_url, "/api/v1/requests", token, {"model": MINILM.name, "input": TEXTS})
            assert status == 201, body
            ids.append(body["id"])
        while not InferenceRequest.objects.filter(pk__in=ids, status=RequestStatus.SUCCEEDED).exists():
            time.sleep(0.05)

        connection.close()
        database.stop(server)
        down_at = time.monotonic()
        try:
            api_status, api_body = http(base_url, "/api/v1/requests", token)
            page_status, page = http(base_url, "/requests/", token, cookie=cookie)
            submit_status, _ = http(base_url, "/api/v1/requests", token, {"model": MINILM.name, "input": "x"})
            time.sleep(2)  # Runners meet the outage: failed fetches, heartbeats, writes.
        finally:
            database.start(server)
        outage_seconds = time.monotonic() - down_at

        assert api_status == 503 and api_body["error"]["code"] == "database_unavailable"
        assert page_status == 503 and "database" in page.lower() and submit_status == 503
        after = []
        for _ in range(20):  # Accepted again once the database is back.
            status, body = http(base_url, "/api/v1/requests", token, {"model": MINILM.name, "input": TEXTS})
            assert status == 201, body
            after.append(body["id"])
        every = ids + after
        deadline = time.monotonic() + 240
        while InferenceRequest.objects.filter(pk__in=every, finished_at__isnull=True).exists():
            assert time.monotonic() < deadline, "requests did not finish after the restart"
            time.sleep(0.1)
    finally:
        web.terminate()
        runner.terminate()

    requests = InferenceRequest.objects.filter(pk__in=every)
    assert {r.status for r in requests} == {RequestStatus.SUCCEEDED}
    assert all(
        results.embeddings_read(request_id=r.pk).shape == (len(TEXTS), MINILM.output_dim)
        for r in requests
    )
    assert runner.popen.returncode == 0, runner.output()
    assert "loaded in" in runner.output() and runner.output().count("loaded in") == 1
    with capsys.disabled():
        print(
            f"\n[fault injection] database restart: runs 1, requests {len(every)} "
            f"({len(ids)} before, {len(after)} after), outage {outage_seconds:.1f} s, "
            f"web during outage: API {api_status}, page {page_status}, submit {submit_status}; "
            f"lost {sum(r.status != RequestStatus.SUCCEEDED for r in requests)}, "
            f"rerun {sum(r.attempts > 1 for r in requests)}"
        )
