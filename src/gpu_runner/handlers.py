"""How the runner runs one task's jobs: in batches, claim many → run → store many.

The runner takes every job it has room for in one statement, and hands the jobs of each task to
that task's ``JobHandler`` as a group, at each step of their way:

1. ``claim(jobs)`` in the transaction that takes them (database thread): what each job is to
   run (its ``work``). A job left out has nothing to run (e.g. its request was cancelled
   meanwhile) and succeeds at once.
2. ``start(runs)`` on the event loop: begin running them; one future per run, giving its result.
   The runner cancels a run's future to abort it (an operator asked) or to hand it back (the
   runner is stopping); the handler then drops whatever of it has not run.
3. ``store(runs)`` in the transaction that records the jobs as succeeded, ``fail(runs)`` in the
   one that records them as failed, ``release(jobs)`` in the one that puts them back in the
   queue untried (database thread). Each gets exactly the jobs whose rows this runner still
   owned, after those rows changed (job, then the rows it touches: the lock order everywhere).

Nothing else of a job's way is the handler's: taking, finishing, fencing, retrying a write
through a database outage, heartbeats and aborts are the runner's (``gpu_runner.runner``).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from procrastinate.jobs import Job


@dataclass(eq=False)
class Run:
    """One job on its way through the runner: what its handler claimed for it (``work``), and
    how it ended (``result`` when it succeeded, ``error`` when it failed)."""

    job: Job
    work: Any
    result: Any = None
    error: BaseException | None = None


class JobHandler(ABC):
    """The runner's side of one task (``task_name``, the name jobs are deferred under)."""

    task_name: str

    @abstractmethod
    def claim(self, jobs: list[Job]) -> dict[int, Any]:
        """What each job runs, by job id, in the transaction that took them."""

    @abstractmethod
    def start(self, runs: list[Run]) -> list[asyncio.Future]:
        """Start running ``runs``; one future per run, in order, giving its result."""

    @abstractmethod
    def store(self, runs: list[Run]) -> None:
        """Write what succeeded runs gave, in the transaction that finishes their jobs."""

    @abstractmethod
    def fail(self, runs: list[Run]) -> None:
        """Record why runs failed (``run.error``), in the transaction that fails their jobs."""

    @abstractmethod
    def release(self, jobs: list[Job]) -> None:
        """Show jobs handed back untried as waiting again, in the transaction that does it."""
