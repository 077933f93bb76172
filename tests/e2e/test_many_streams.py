"""Many open live-status pages on one real uvicorn web process hold none of its database
connections: with three times the pool in open streams, the API and /readyz still answer, and
a status change still reaches every stream of its owner."""

from __future__ import annotations

import json
import urllib.request

import pytest

from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.e2e.test_end_to_end import call
from tests.support.processes import start_web

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

POOL_SIZE = 4
TIMEOUT = 10  # Generous: the point is an answer (not a 503 after the pool's wait), not speed.


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    process, base_url = start_web(
        tmp_path_factory.mktemp("web"), DATABASE_POOL_MAX_SIZE=str(POOL_SIZE)
    )
    yield base_url
    process.terminate()


def signed_in_cookie(base_url: str, username: str, password: str) -> str:
    """Sign in through the login page, as a browser does; the session cookie it sets."""
    cookies = urllib.request.HTTPCookieProcessor()
    opener = urllib.request.build_opener(cookies)
    opener.open(f"{base_url}/accounts/login/", timeout=TIMEOUT).close()
    csrf = next(c.value for c in cookies.cookiejar if c.name == "csrftoken")
    form = f"username={username}&password={password}&csrfmiddlewaretoken={csrf}".encode()
    login = urllib.request.Request(
        f"{base_url}/accounts/login/", data=form, headers={"Referer": f"{base_url}/accounts/login/"}
    )
    with opener.open(login, timeout=TIMEOUT) as page:
        assert page.status == 200 and page.url.endswith("/requests/"), page.url
    return "sessionid=" + next(c.value for c in cookies.cookiejar if c.name == "sessionid")


def open_stream(base_url: str, path: str, cookie: str):
    stream = urllib.request.urlopen(
        urllib.request.Request(base_url + path, headers={"Cookie": cookie, "Accept": "text/event-stream"}),
        timeout=30,
    )
    assert stream.status == 200
    assert stream.readline().startswith(b"retry: ")  # The reconnect hint comes first, at once.
    return stream


def next_status_event(stream) -> dict:
    event = None
    while True:
        line = stream.readline().decode()
        assert line, "the stream ended"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "status":
            return json.loads(line[6:])


def test_three_times_the_pool_in_open_streams_leave_the_api_and_readyz_answering(
    web, make_user, token_for
):
    users = [make_user(f"viewer{n}") for n in range(3)]
    cookies = [signed_in_cookie(web, user.username, f"{user.username}-Secret-123") for user in users]
    streams = [
        (n % len(users), open_stream(web, "/requests/events", cookies[n % len(users)]))
        for n in range(3 * POOL_SIZE)
    ]
    try:
        token = token_for(users[0])
        for _ in range(3):
            with urllib.request.urlopen(f"{web}/readyz", timeout=TIMEOUT) as ready:
                assert ready.status == 200
            status, listed = call(web, "/api/v1/requests", token)
            assert status == 200, listed

        status, created = call(web, "/api/v1/requests", token, {"model": MINILM.name, "input": "watched"})
        assert status == 201, created
        status, cancelled = call(web, f"/api/v1/requests/{created['id']}/cancel", token, {})
        assert status == 200, cancelled

        # Every stream of the owner sees the request queued, then cancelled.
        owners = [stream for owner, stream in streams if owner == 0]
        for stream in owners:
            seen = [next_status_event(stream) for _ in range(2)]
            assert [(e["id"], e["status"]) for e in seen] == [
                (created["id"], "queued"), (created["id"], "cancelled")
            ]
    finally:
        for _, stream in streams:
            stream.close()
