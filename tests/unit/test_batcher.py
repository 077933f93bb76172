"""The batcher with a small in-test model: batching logic only (no database involved)."""

import asyncio

import pytest
import torch

from gpu_runner.batcher import Batcher
from gpu_runner.models.base import InferenceError, RunnerModel
from product.inference.specs import MINILM


class LengthModel(RunnerModel):
    """Outputs each text's length; refuses texts containing 'boom'. Records its batches."""

    def __init__(self):
        super().__init__(spec=MINILM, device=torch.device("cpu"))
        self.batches: list[list[str]] = []

    def load(self):
        pass

    def run_batch(self, items):
        self.batches.append(list(items))
        if any("boom" in item for item in items):
            raise ValueError("cannot run 'boom'")
        return [len(item) for item in items]

    def pack(self, outputs):
        return {"lengths": outputs}


def run(coroutine):
    return asyncio.run(coroutine)


def test_jobs_waiting_together_share_one_forward_pass_and_get_their_own_results():
    model = LengthModel()
    batcher = Batcher(model, max_batch_size=16, max_wait=0.01)

    async def scenario():
        return await asyncio.gather(
            batcher.run(["a", "bb"]), batcher.run(["ccc"]), batcher.run(["dddd", "eeeee"])
        )

    results = run(scenario())
    assert [outputs for outputs, _ in results] == [[1, 2], [3], [4, 5]]
    assert model.batches == [["a", "bb", "ccc", "dddd", "eeeee"]]


def test_a_batch_never_exceeds_the_size_limit():
    model = LengthModel()
    batcher = Batcher(model, max_batch_size=3, max_wait=0.01)
    outputs, _ = run(batcher.run(["x"] * 7))
    assert outputs == [1] * 7
    assert [len(batch) for batch in model.batches] == [3, 3, 1]


def test_a_failing_input_fails_only_its_own_job():
    model = LengthModel()
    batcher = Batcher(model, max_batch_size=16, max_wait=0.01)

    async def scenario():
        return await asyncio.gather(
            batcher.run(["fine"]), batcher.run(["boom"]), return_exceptions=True
        )

    good, bad = run(scenario())
    assert good[0] == [4]
    assert isinstance(bad, InferenceError)
    assert "cannot run 'boom'" in str(bad)


def test_compute_time_is_reported_per_job():
    batcher = Batcher(LengthModel(), max_batch_size=16, max_wait=0)
    _, compute_ms = run(batcher.run(["a", "b"]))
    assert compute_ms >= 0


def test_a_lone_job_is_not_held_back_waiting_for_a_full_batch():
    model = LengthModel()
    batcher = Batcher(model, max_batch_size=1000, max_wait=0.005)
    outputs, _ = run(asyncio.wait_for(batcher.run(["solo"]), timeout=5))
    assert outputs == [4]


@pytest.mark.parametrize("size", [1, 5])
def test_outputs_come_back_in_input_order(size):
    batcher = Batcher(LengthModel(), max_batch_size=2, max_wait=0)
    texts = ["x" * n for n in range(1, size + 1)]
    outputs, _ = run(batcher.run(texts))
    assert outputs == list(range(1, size + 1))
