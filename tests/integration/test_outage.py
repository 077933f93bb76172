"""While PostgreSQL is down, the web answers a clear 503 (JSON for the API, a page otherwise)
instead of a 500 and a traceback, and its probes tell the platform what is going on.

A real uvicorn web process is pointed at a port where nothing listens: the database errors
then come from the real driver, through the whole middleware chain."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import logging

import pytest
from django.db import connection
from django.test import Client

from tests.support.processes import Process, child_env, free_port


@pytest.fixture(scope="module")
def web_without_database(tmp_path_factory):
    port = free_port()
    env = child_env(
        DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/nothing",
        DATABASE_UNAVAILABLE_RETRY_AFTER="7",
        METRICS_TOKEN="scrape-secret",
        DATABASE_POOL_TIMEOUT="0.5",  # Each request waits this long for the absent database.
    )
    args = [
        sys.executable, "-m", "uvicorn", "product.asgi:application",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
    ]
    web = Process("web-no-db", args, env, tmp_path_factory.mktemp("outage"))
    web.wait_for_output("Uvicorn running on", timeout=60)
    yield web, f"http://127.0.0.1:{port}"
    web.terminate()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def fetch(url: str, method: str = "GET", body: bytes | None = None, **headers: str):
    """(status, headers, body) of one request, redirects not followed; an HTTP error status is
    an answer, not a failure."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_an_api_call_gets_a_503_json_error_with_retry_after(web_without_database):
    web, base_url = web_without_database
    body = json.dumps({"model": "all-minilm-l6-v2", "input": "hello"}).encode()

    status, headers, content = fetch(
        f"{base_url}/api/v1/requests", "POST", body,
        Authorization="Bearer gq_some-token", **{"Content-Type": "application/json"},
    )

    assert status == 503
    assert headers["Retry-After"] == "7"
    error = json.loads(content)["error"]
    assert error["code"] == "database_unavailable"
    assert "database is unavailable" in error["message"]


def test_a_signed_in_page_gets_the_503_page(web_without_database):
    web, base_url = web_without_database

    # A browser that signed in before sends its session cookie; reading the session fails.
    status, headers, content = fetch(f"{base_url}/requests/", Cookie="sessionid=" + "s" * 32)

    assert status == 503
    assert headers["Retry-After"] == "7"
    assert headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in content.decode()


def test_liveness_stays_up_and_readiness_says_the_database_does_not_answer(web_without_database):
    web, base_url = web_without_database

    live_status, _, live_body = fetch(f"{base_url}/healthz")
    ready_status, _, ready_body = fetch(f"{base_url}/readyz")

    assert (live_status, live_body) == (200, b"ok")
    assert ready_status == 503
    assert json.loads(ready_body) == {
        "status": "unavailable", "message": "the database does not answer."
    }


def test_metrics_still_answer_and_report_the_database_down(web_without_database):
    web, base_url = web_without_database

    status, _, content = fetch(f"{base_url}/metrics", Authorization="Bearer scrape-secret")

    assert status == 200
    assert "gpuqueue_database_up 0.0" in content.decode().splitlines()


def test_each_failure_is_logged_in_one_line_without_a_traceback(web_without_database):
    web, base_url = web_without_database
    fetch(f"{base_url}/api/v1/requests/1", Authorization="Bearer gq_another-token")

    log = web.output()

    assert "database unavailable: GET /api/v1/requests/1 answered 503 (OperationalError" in log
    assert "Traceback" not in log
    assert "Internal Server Error" not in log


class QueryAfterTheViewMiddleware:
    """Runs a query after the view, as the session middleware does when it saves a session, and
    has it cancelled by the server: a real OperationalError from inside the middleware chain."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 1")
            cursor.execute("SELECT pg_sleep(1)")
        return response


@pytest.mark.django_db
def test_a_database_error_raised_by_a_middleware_gets_the_503_too(settings, caplog):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE, "tests.integration.test_outage.QueryAfterTheViewMiddleware"
    ]
    client = Client(raise_request_exception=False, HTTP_X_FORWARDED_PROTO="https")

    with caplog.at_level(logging.INFO):
        response = client.get("/api/openapi.json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # No traceback logged.
    assert any("answered 503 (OperationalError" in r.getMessage() for r in caplog.records)
