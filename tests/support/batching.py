"""Submitting one job to a batcher and awaiting it, as the unit tests of batching do."""

from __future__ import annotations

from gpu_runner.batcher import Batcher, Work


async def submit_one(batcher: Batcher, values: list, *, on_progress=None, priority=0, owner=None):
    """Submit one job's ``values``; its (outputs, compute_ms) once they have run."""
    (future,) = batcher.submit([Work(values, priority=priority, owner=owner, on_progress=on_progress)])
    done = await future
    return done.outputs, done.compute_ms
