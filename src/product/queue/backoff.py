"""Capped exponential backoff with jitter: how long to wait before trying again.

Every loop that retries against the database after a failure (a runner taking jobs, writing
outcomes, listening; the web's status listener reconnecting) waits by this rule, and the
rescue of stalled jobs schedules their next run by it too (``delay`` without the jitter, as
SQL parameters), so there is one formula to reason about: after ``n`` failures in a row,
``min(cap, first * factor ** n)`` seconds.

The jitter (each wait drawn from ``delay * [1 - jitter, 1 + jitter)``) keeps the runners and
web processes that all lost the database at once from all coming back at the same instant.
"""

from __future__ import annotations

import random


class Backoff:
    """The waits of one retrying loop: ``next()`` after each failure, ``reset()`` after a
    success. Not shared between loops (each has its own count of failures)."""

    def __init__(
        self, *, first: float, cap: float, factor: float = 2.0, jitter: float = 0.5
    ) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"need 0 < first <= cap (got first={first}, cap={cap})")
        if factor < 1:
            raise ValueError(f"factor must be at least 1 (got {factor})")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1) (got {jitter})")
        self.first, self.cap, self.factor, self.jitter = first, cap, factor, jitter
        self.failures = 0

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (0: the first wait), without jitter."""
        if failures < 0:
            raise ValueError(f"failures cannot be negative (got {failures})")
        try:
            return min(self.cap, self.first * self.factor**failures)
        except OverflowError:  # factor ** failures beyond a float: long past the cap.
            return self.cap

    def next(self) -> float:
        """Seconds to wait now, after one more failure."""
        wait = self.delay(self.failures)
        if wait < self.cap:  # Past the cap the count no longer matters.
            self.failures += 1
        if self.jitter:
            wait *= 1 - self.jitter + 2 * self.jitter * random.random()
        return wait

    def reset(self) -> None:
        """A success: the next failure waits ``first`` again."""
        self.failures = 0

    def __repr__(self) -> str:
        return (
            f"Backoff(first={self.first}, cap={self.cap}, factor={self.factor}, "
            f"jitter={self.jitter})"
        )
