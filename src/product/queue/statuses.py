"""The sets of Procrastinate job statuses this product reasons with, each defined once.

A job waits (``todo``), runs (``doing``), and ends: a run ends it as succeeded, failed or
aborted; a cancel ends a waiting job as cancelled. Nothing changes a job after it ends, so
finished jobs are the ones retention may delete.
"""

from __future__ import annotations

WAITING = ("todo",)
RUNNING = ("doing",)
# Queue depth: what is still to be done or being done.
ACTIVE = WAITING + RUNNING
# How a run ends a job: what a runner may finish one as.
RUN_OUTCOMES = ("succeeded", "failed", "aborted")
# Every status a job ends in.
FINISHED = RUN_OUTCOMES + ("cancelled",)
