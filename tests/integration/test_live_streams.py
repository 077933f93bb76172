"""Live-status streams through the real ASGI application, in this process: an open stream holds
no database connection, notifications reach only the streams that may see them, the limits
answer 429, and a stream's subscriber always goes (end, disconnect, never iterated)."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client, RequestFactory

from product.inference import services, views
from product.inference.live import released
from product.inference.live import hub
from inference_models.sentence_embedding.spec import SPEC as MINILM

# Transactional: the application's request threads must see the users and rows committed.
pytestmark = pytest.mark.usefixtures("clean_queue")


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


class AsgiClient:
    """One GET to the ASGI application, read as it streams; the client can hang up."""

    def __init__(self, path: str, cookie: str) -> None:
        from product.asgi import application

        self._to_app: asyncio.Queue = asyncio.Queue()
        # One message in flight, as a socket's buffer: the app's send waits for the client.
        self._from_app: asyncio.Queue = asyncio.Queue(maxsize=1)
        self._to_app.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
            "headers": [(b"host", b"testserver"), (b"cookie", cookie.encode()),
                        (b"x-forwarded-proto", b"https"), (b"accept", b"text/event-stream")],
        }
        self.task = asyncio.create_task(application(scope, self._to_app.get, self._from_app.put))
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.text = ""
        self.ended = False

    async def start(self) -> AsgiClient:
        message = await asyncio.wait_for(self._from_app.get(), 30)
        self.status = message["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        return self

    async def read_until(self, text: str) -> str:
        while text not in self.text:
            assert not self.ended, f"the stream ended without {text!r}: {self.text!r}"
            await self._read_one()
        return self.text

    async def read_to_end(self) -> str:
        while not self.ended:
            await self._read_one()
        await asyncio.wait_for(self.task, 30)
        return self.text

    async def hang_up(self) -> None:
        await self._to_app.put({"type": "http.disconnect"})
        await asyncio.wait_for(self.task, 30)

    async def _read_one(self) -> None:
        message = await asyncio.wait_for(self._from_app.get(), 30)
        self.text += message.get("body", b"").decode()
        self.ended = not message.get("more_body", False)


def status_events(stream: AsgiClient) -> list[dict]:
    """The payloads of the stream's status events."""
    events, name = [], None
    for line in stream.text.splitlines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == "status":
            events.append(json.loads(line[6:]))
    return events


async def open_stream(path: str, cookie: str) -> AsgiClient:
    stream = await AsgiClient(path, cookie).start()
    if stream.status == 200:
        await stream.read_until("retry: ")
    return stream


async def subscribers_become(count: int) -> int:
    """The hub's subscriber count once it is ``count`` (a close from a worker thread lands on
    the event loop a moment later), or what it still is after 10 s."""
    for _ in range(200):
        if hub.subscriber_count() == count:
            break
        await asyncio.sleep(0.05)
    return hub.subscriber_count()


def connections_held() -> int:
    """Connections taken from the pool and not given back."""
    stats = connection.pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


# Database calls from the event loop run in a worker thread that then gives its connection back
# (as the views do), so no connection outlives the test.
submit_released = released(services.request_submit)
cancel_released = released(services.request_cancel)


def submit(user, text: str):
    return submit_released(user=user, model=MINILM.name, raw_input=text)


def test_open_streams_hold_no_database_connection_and_leave_no_subscriber_when_they_end(
    make_user, settings
):
    settings.INFERENCE_STREAM_MAX_AGE = 3.0
    alice = make_user("alice")
    cookie = session_cookie(alice)
    request = services.request_submit(user=alice, model=MINILM.name, raw_input="watch me")
    connection.close()  # This thread's own connection goes back too: count only the streams'.

    async def scenario():
        streams = [await open_stream("/requests/events", cookie) for _ in range(3)]
        streams.append(await open_stream(f"/requests/{request.pk}/events", cookie))
        assert [s.status for s in streams] == [200] * 4
        await streams[-1].read_until('"status": "queued"')
        assert hub.subscriber_count() == 4
        assert connections_held() == 0
        for stream in streams:  # The maximum age ends each one; the browser would reconnect.
            await stream.read_to_end()
        assert await subscribers_become(0) == 0
        return streams

    streams = asyncio.run(scenario())
    assert all(s.text.startswith("retry: ") for s in streams)


def test_a_client_that_hangs_up_mid_stream_leaves_no_subscriber(make_user):
    alice = make_user("alice")
    cookie = session_cookie(alice)

    async def scenario():
        stream = await open_stream("/requests/events", cookie)
        assert hub.subscriber_count() == 1
        created = await submit(alice, "a change")
        await stream.read_until(f'"id": {created.pk},')
        await stream.hang_up()
        return await subscribers_become(0)

    assert asyncio.run(scenario()) == 0


def test_a_stream_response_never_iterated_leaves_no_subscriber(make_user):
    alice = make_user("alice")
    request = RequestFactory().get("/requests/events")
    request.user = alice

    async def scenario():
        closed = await views.request_list_events(request)
        await sync_to_async(closed.close)()  # Django closes a response it never streamed.
        after_close = await subscribers_become(0)
        dropped = await views.request_list_events(request)
        assert hub.subscriber_count() == 1
        del dropped  # Nothing closes it: collecting it unsubscribes.
        gc.collect()
        return after_close, await subscribers_become(0)

    assert asyncio.run(scenario()) == (0, 0)


def test_changes_reach_only_the_owners_streams_and_those_of_users_who_see_all(make_user):
    alice, bob, admin = make_user("alice"), make_user("bob"), make_user("admin", superuser=True)
    cookies = {user.username: session_cookie(user) for user in (alice, bob, admin)}
    watched = services.request_submit(user=alice, model=MINILM.name, raw_input="watched")

    async def scenario():
        lists = {name: await open_stream("/requests/events", cookie) for name, cookie in cookies.items()}
        detail = await open_stream(f"/requests/{watched.pk}/events", cookies["admin"])
        assert hub.subscriber_count() == 4
        assert hub.subscriber_count(viewer=admin.pk) == 2
        alices = await submit(alice, "alice's")
        for name in ("alice", "admin"):
            await lists[name].read_until(f'"id": {alices.pk},')
        bobs = await submit(bob, "bob's")
        await lists["bob"].read_until(f'"id": {bobs.pk},')
        await lists["admin"].read_until(f'"id": {bobs.pk},')
        await cancel_released(request=watched)
        await detail.read_until('"status": "cancelled"')
        await lists["alice"].read_until(f'"id": {watched.pk}, "owner": {alice.pk}, "status": "cancelled"')
        for stream in (*lists.values(), detail):
            await stream.hang_up()
        return lists, detail, await subscribers_become(0)

    lists, detail, remaining = asyncio.run(scenario())
    assert remaining == 0
    assert {event["owner"] for event in status_events(lists["alice"])} == {alice.pk}
    assert {event["owner"] for event in status_events(lists["bob"])} == {bob.pk}
    assert {event["owner"] for event in status_events(lists["admin"])} == {alice.pk, bob.pk}
    # The detail stream is subscribed under its request's owner and keeps only its request.
    assert {event["id"] for event in status_events(detail)} == {watched.pk}


def notify_many(owner: int, ids: range) -> None:
    """Status notifications of ``ids`` owned by ``owner``, as the services send them, in order."""
    payloads = [json.dumps({"id": i, "owner": owner, "status": "running"}) for i in ids]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, p) FROM unnest(%s::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
            [django_settings.INFERENCE_STATUS_CHANNEL, payloads],
        )


def test_a_client_too_slow_for_its_backlog_gets_a_resync_instead_of_a_gap(make_user):
    alice = make_user("alice")
    cookie = session_cookie(alice)

    async def scenario():
        stream = await open_stream("/requests/events", cookie)  # Then it reads nothing a while.
        await released(notify_many)(alice.pk, range(1, 601))
        await stream.read_until('"id": 600,')  # Notes arrive in order: all 600 went through.
        await stream.hang_up()
        return stream, await subscribers_become(0)

    stream, remaining = asyncio.run(scenario())
    assert remaining == 0
    assert "event: resync" in stream.text  # The page re-reads what did not fit.
    assert len(status_events(stream)) < 600


def test_streams_beyond_the_per_user_limit_are_refused_with_a_429_naming_it(make_user, settings):
    settings.INFERENCE_STREAMS_PER_USER = 2
    alice, bob = make_user("alice"), make_user("bob")
    cookies = session_cookie(alice), session_cookie(bob)

    async def scenario():
        allowed = [await open_stream("/requests/events", cookies[0]) for _ in range(2)]
        refused = await open_stream("/requests/events", cookies[0])
        await refused.read_to_end()
        others = await open_stream("/requests/events", cookies[1])
        counted = hub.subscriber_count()
        for stream in (*allowed, others):
            await stream.hang_up()
        return refused, others, counted, await subscribers_become(0)

    refused, others, counted, remaining = asyncio.run(scenario())
    assert refused.status == 429
    assert refused.headers["retry-after"].isdigit()
    assert refused.headers["content-type"].startswith("text/plain")
    assert "2 live status streams open, the most one user may have" in refused.text
    assert others.status == 200  # Another user is not held to alice's count.
    assert (counted, remaining) == (3, 0)


def test_streams_beyond_the_per_process_limit_are_refused_with_a_429_naming_it(make_user, settings):
    settings.INFERENCE_STREAMS_PER_PROCESS = 1
    alice, bob = make_user("alice"), make_user("bob")
    cookies = session_cookie(alice), session_cookie(bob)

    async def scenario():
        allowed = await open_stream("/requests/events", cookies[0])
        refused = await open_stream("/requests/events", cookies[1])
        await refused.read_to_end()
        await allowed.hang_up()
        return refused, await subscribers_become(0)

    refused, remaining = asyncio.run(scenario())
    assert refused.status == 429 and refused.headers["retry-after"].isdigit()
    assert "This server has 1 live status streams open, the most it serves at once" in refused.text
    assert remaining == 0
