"""One backoff rule for every retrying loop: capped exponential waits with jitter, reset by a
success."""

from __future__ import annotations

import pytest

from product.queue.backoff import Backoff
from product.queue.workers import RESCUE_BACKOFF


def test_waits_double_from_first_up_to_the_cap():
    backoff = Backoff(first=0.1, cap=1.0, jitter=0)

    assert [backoff.next() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_a_success_starts_again_from_first():
    backoff = Backoff(first=0.5, cap=5.0, jitter=0)
    backoff.next(), backoff.next()

    backoff.reset()

    assert backoff.next() == 0.5


def test_jitter_spreads_each_wait_around_its_delay():
    backoff = Backoff(first=1.0, cap=1.0, jitter=0.5)

    waits = [backoff.next() for _ in range(200)]

    assert all(0.5 <= wait < 1.5 for wait in waits)
    assert len(set(waits)) > 1


def test_delay_is_the_rule_without_jitter_and_never_overflows():
    backoff = Backoff(first=2.0, cap=300.0, factor=2.0)

    assert [backoff.delay(n) for n in range(4)] == [2.0, 4.0, 8.0, 16.0]
    assert backoff.delay(10_000) == 300.0


def test_a_long_outage_keeps_waiting_the_cap():
    backoff = Backoff(first=1.0, cap=4.0, jitter=0)

    waits = [backoff.next() for _ in range(5000)]

    assert waits[-1] == 4.0 and backoff.failures == 2


def test_rescued_jobs_wait_by_the_same_rule():
    assert [RESCUE_BACKOFF.delay(n) for n in range(3)] == [2.0, 4.0, 8.0]
    assert RESCUE_BACKOFF.delay(50) == RESCUE_BACKOFF.cap


@pytest.mark.parametrize(
    "options",
    [{"first": 0, "cap": 1}, {"first": 2, "cap": 1}, {"first": 1, "cap": 2, "factor": 0.5},
     {"first": 1, "cap": 2, "jitter": 1}],
)
def test_settings_that_make_no_backoff_are_refused(options):
    with pytest.raises(ValueError):
        Backoff(**options)
