"""The batcher's time limit on a forward pass: a pass that never returns fails its own inputs
with ModelHung(ran=True) and every input after it with ModelHung(ran=False), since nothing can
run behind a thread that is stuck. No database involved."""

import asyncio
import threading

import torch

from gpu_runner.batcher import Batcher, ModelHung
from tests.support.batching import submit_one
from tests.support.text_model import TextModel
from inference_models.sentence_embedding.spec import SPEC as MINILM


class StuckModel(TextModel):
    """Its passes of texts starting with 'hang' block until ``release`` is set."""

    max_input_tokens = 16

    def __init__(self):
        super().__init__(spec=MINILM, device=torch.device("cpu"), dtype=torch.float32)
        self.release = threading.Event()

    def run_batch(self, batch):
        if any(item.startswith("hang") for item in batch):
            self.release.wait()
        return [len(item) for item in batch]

    def pack(self, outputs):
        return {"lengths": outputs}


def test_a_pass_that_does_not_return_in_time_fails_its_inputs_and_all_after_them():
    model = StuckModel()
    batcher = Batcher(model, max_batch_size=1, max_batch_tokens=16, max_wait=0, batch_timeout=0.2)

    async def scenario():
        done = await submit_one(batcher, ["fine"])
        stuck = asyncio.ensure_future(submit_one(batcher, ["hang"]))
        await asyncio.sleep(0.01)
        behind = asyncio.ensure_future(submit_one(batcher, ["after"]))
        results = await asyncio.gather(stuck, behind, return_exceptions=True)
        later = await asyncio.gather(submit_one(batcher, ["later"]), return_exceptions=True)
        return done, results, later

    try:
        done, (stuck, behind), (later,) = asyncio.run(scenario())
    finally:
        model.release.set()  # Let the stuck thread end with the test.
    assert done[0] == [4]
    assert isinstance(stuck, ModelHung) and stuck.ran
    assert "did not return within 0.2 s" in str(stuck)
    assert isinstance(behind, ModelHung) and not behind.ran
    assert isinstance(later, ModelHung) and not later.ran


def test_without_a_limit_a_slow_pass_is_waited_for():
    model = StuckModel()
    batcher = Batcher(model, max_batch_size=4, max_batch_tokens=16, max_wait=0, batch_timeout=0)

    async def scenario():
        running = asyncio.ensure_future(submit_one(batcher, ["hang"]))
        await asyncio.sleep(0.3)
        assert not running.done()
        model.release.set()
        return await running

    outputs, _ = asyncio.run(scenario())
    assert outputs == [4]
