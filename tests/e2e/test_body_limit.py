"""A body over MAX_REQUEST_BODY_BYTES gets a 413 from the real uvicorn web process before it
has been sent whole, without credentials and whether its length is announced or chunked."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from django.conf import settings

from tests.support.processes import start_web

pytestmark = pytest.mark.e2e

CHUNK = b"x" * 65536


@pytest.fixture(scope="module")
def web(django_db_setup, tmp_path_factory):
    process, base_url = start_web(tmp_path_factory.mktemp("body-limit"))
    yield process, int(base_url.rsplit(":", 1)[1])
    process.terminate()


def read_response(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


@pytest.fixture
def sock(web):
    _, port = web
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        yield connection


def send_chunked_past_the_limit(sock: socket.socket, path: str) -> tuple[http.client.HTTPResponse, int]:
    """POST a chunked body without credentials; stop sending a little past the limit (a real
    attacker would go on) and read the answer. Returns it and the bytes sent."""
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0
    while sent <= settings.MAX_REQUEST_BODY_BYTES + len(CHUNK):
        try:
            sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
        except (BrokenPipeError, ConnectionResetError):
            break  # The server has answered and closed: the answer is waiting to be read.
        sent += len(CHUNK)
    # No terminating zero-length chunk: the body is not over, and the answer still comes.
    return read_response(sock), sent


def test_a_chunked_api_body_over_the_limit_gets_a_json_413_before_it_is_all_sent(sock):
    response, sent = send_chunked_past_the_limit(sock, "/api/v1/requests")

    assert response.status == 413
    assert response.getheader("Connection") == "close"
    body = json.loads(response.read())
    assert body["error"]["code"] == "too_large"
    assert str(settings.MAX_REQUEST_BODY_BYTES) in body["error"]["message"]
    assert sent < 2 * settings.MAX_REQUEST_BODY_BYTES


def test_a_chunked_page_body_over_the_limit_gets_a_plain_413(sock):
    response, _ = send_chunked_past_the_limit(sock, "/accounts/login/")

    assert response.status == 413
    assert response.getheader("Content-Type").startswith("text/plain")


def test_an_announced_length_over_the_limit_is_refused_before_a_byte_of_body_is_sent(sock):
    sock.sendall(
        f"POST /api/v1/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {1024 ** 3}\r\n\r\n".encode()
    )

    response = read_response(sock)

    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "too_large"


def test_a_body_within_the_limit_reaches_the_api_as_before(web):
    """Counting the bytes changes nothing for an ordinary body: without a token it is the
    API's own 401."""
    process, port = web
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"model": "all-minilm-l6-v2", "input": ["x" * 1000] * 100})
    connection.request(
        "POST", "/api/v1/requests", body=body, headers={"Content-Type": "application/json"}
    )

    response = connection.getresponse()

    assert response.status == 401
    assert json.loads(response.read())["error"]["code"] == "unauthenticated"
    connection.close()


def test_a_batch_upload_may_be_larger_up_to_its_own_limit(web):
    """The upload paths have BATCH_MAX_UPLOAD_BYTES instead: a body over the request limit
    reaches the API (its 401 without a token), one announced over the upload limit does not."""
    process, port = web
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = b"x" * (settings.MAX_REQUEST_BODY_BYTES + len(CHUNK))
    connection.request("POST", "/api/v1/batches", body=body, headers={"Content-Type": "text/plain"})
    response = connection.getresponse()
    assert response.status == 401
    assert json.loads(response.read())["error"]["code"] == "unauthenticated"
    connection.close()

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest("POST", "/api/v1/batches")
    connection.putheader("Content-Length", str(settings.BATCH_MAX_UPLOAD_BYTES + 1))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    assert str(settings.BATCH_MAX_UPLOAD_BYTES) in json.loads(response.read())["error"]["message"]
    connection.close()
