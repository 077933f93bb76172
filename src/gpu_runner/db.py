"""The runner's way into Django's database code: off the event loop, on one long-lived
connection that is dropped after a database error so the next call reconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django import db

from product.queue.backoff import Backoff
from product.queue.errors import DATABASE_UNAVAILABLE

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def in_db(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run ``function`` in the runner's database thread (one connection, reused)."""

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except DATABASE_UNAVAILABLE:
            db.connection.close()  # Broken by an outage or restart: reconnect next time.
            raise

    return sync_to_async(call, thread_sensitive=True)


async def until_done(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``function`` in the database thread until the database answers.

    For writes that must not be dropped (a job's outcome): while PostgreSQL is down or
    restarting, wait with capped exponential backoff and try again."""
    backoff = Backoff(first=0.1, cap=5.0)
    while True:
        try:
            return await in_db(function)(*args, **kwargs)
        except DATABASE_UNAVAILABLE as error:
            delay = backoff.next()
            logger.warning(
                "database unavailable (%s); retrying %s in %.1f s",
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
                function.__name__, delay,
            )
            await asyncio.sleep(delay)
