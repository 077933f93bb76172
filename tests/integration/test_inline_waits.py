"""The hub's inline waiters (``StatusHub.watching``, used by POST /v1/embeddings) on a real
LISTEN: a waiter wakes when its own request reaches a final status, committed by anyone, or
when a resync says read again; not for another request or a status that is not final; it is
not counted as a live stream, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from product.inference.live import StatusHub

pytestmark = pytest.mark.usefixtures("transactional_db")


def _notify(message: dict) -> None:
    """A status change as the runner sends it: committed at once (autocommit). Run in
    asgiref's thread, whose connection is closed after (it would outlive the test)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [settings.INFERENCE_STATUS_CHANNEL, json.dumps(message)])
    finally:
        connection.close()


def test_a_waiter_wakes_for_its_requests_final_status_and_on_resync_only():
    async def scenario():
        hub = StatusHub()
        async with hub.watching(5) as watch:
            assert (hub.watch_count(), hub.subscriber_count()) == (1, 0)
            await sync_to_async(_notify)({"id": 5, "owner": 1, "status": "running"})
            await sync_to_async(_notify)({"id": 6, "owner": 1, "status": "succeeded"})
            woken_early = await watch.finished(0.3)
            await sync_to_async(_notify)({"id": 5, "owner": 1, "status": "succeeded"})
            woken = await watch.finished(30)
            hub.publish({"resync": True})
            resynced = await watch.finished(30)
        left = hub.watch_count()
        hub._listener.cancel()
        return woken_early, woken, resynced, left

    assert asyncio.run(scenario()) == (False, True, True, 0)


def test_many_waiters_on_one_request_all_wake_and_all_go():
    async def scenario():
        hub = StatusHub()

        async def wait() -> bool:
            async with hub.watching(9) as watch:
                return await watch.finished(30)

        waiters = [asyncio.create_task(wait()) for _ in range(3)]
        while hub.watch_count() < 3:
            await asyncio.sleep(0.01)
        await sync_to_async(_notify)({"id": 9, "owner": 2, "status": "failed"})
        woken = await asyncio.gather(*waiters)
        left = hub.watch_count()
        hub._listener.cancel()
        return woken, left

    assert asyncio.run(scenario()) == ([True, True, True], 0)
