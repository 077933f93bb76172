"""The batcher with a small in-test model: batching logic only (no database involved)."""

import asyncio
import random
import threading

import pytest
import torch

from gpu_runner.batcher import WINDOW_BATCHES, Batcher
from gpu_runner.models.base import InferenceError
from tests.support.batching import submit_one
from tests.support.text_model import TextModel
from inference_models.sentence_embedding.spec import SPEC as MINILM


class LengthModel(TextModel):
    """Outputs each text's length (a text's tokens are its characters); refuses texts
    containing 'boom'; runs out of memory above ``memory`` padded tokens. Records its batches."""

    max_input_tokens = 16

    def __init__(self, memory: int | None = None):
        super().__init__(spec=MINILM, device=torch.device("cpu"), dtype=torch.float32)
        self.memory = memory
        self.batches: list[list[str]] = []

    def run_batch(self, batch):
        if self.memory is not None and max(map(len, batch)) * len(batch) > self.memory:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        self.batches.append(list(batch))
        if any("boom" in item for item in batch):
            raise ValueError("cannot run 'boom'")
        return [len(item) for item in batch]

    def pack(self, outputs):
        return {"lengths": outputs}


def batcher_for(model, *, max_batch_size=64, max_batch_tokens=64, max_wait=0.01):
    return Batcher(
        model, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens, max_wait=max_wait
    )


def run(coroutine):
    return asyncio.run(coroutine)


def test_jobs_waiting_together_share_one_forward_pass_and_get_their_own_results():
    model = LengthModel()
    batcher = batcher_for(model)

    async def scenario():
        return await asyncio.gather(
            submit_one(batcher, ["a", "bb"]), submit_one(batcher, ["ccc"]), submit_one(batcher, ["dddd", "eeeee"])
        )

    results = run(scenario())
    assert [outputs for outputs, _ in results] == [[1, 2], [3], [4, 5]]
    assert model.batches == [["a", "bb", "ccc", "dddd", "eeeee"]]


def test_a_batch_never_exceeds_the_size_limit():
    model = LengthModel()
    outputs, _ = run(submit_one(batcher_for(model, max_batch_size=3), ["x"] * 7))
    assert outputs == [1] * 7
    assert [len(batch) for batch in model.batches] == [3, 3, 1]


def test_batches_are_sorted_by_length_and_bounded_by_the_token_budget():
    model = LengthModel()
    texts = ["x" * n for n in (9, 1, 8, 2, 7, 3)]
    outputs, _ = run(submit_one(batcher_for(model, max_batch_tokens=16), texts))

    assert outputs == [9, 1, 8, 2, 7, 3]  # Each caller's order is kept.
    # The batch holding the oldest input runs first; each batch is a run of similar lengths.
    assert model.batches == [["x" * 9], ["x", "xx", "xxx"], ["x" * 7, "x" * 8]]
    assert all(max(map(len, b)) * len(b) <= 16 for b in model.batches)


def test_a_budget_smaller_than_one_input_is_refused_at_start():
    with pytest.raises(ValueError, match="smaller than one input"):
        batcher_for(LengthModel(), max_batch_tokens=8)


def test_warm_up_runs_the_largest_batches_the_budget_allows():
    model = LengthModel()
    model.warm_up(max_batch_size=8, max_batch_tokens=64)
    assert sorted((len(b), len(b[0])) for b in model.batches) == [(4, 16), (8, 8)]


def test_warm_up_fails_when_the_budget_does_not_fit_in_memory():
    with pytest.raises(torch.OutOfMemoryError):
        LengthModel(memory=32).warm_up(max_batch_size=8, max_batch_tokens=64)


def test_out_of_memory_splits_the_batch_until_it_fits():
    model = LengthModel(memory=8)
    outputs, _ = run(submit_one(batcher_for(model), ["ab"] * 10))
    assert outputs == [2] * 10
    assert all(len(b) * 2 <= 8 for b in model.batches)


def test_only_an_input_that_cannot_run_alone_fails_and_says_why():
    batcher = batcher_for(LengthModel(memory=10))

    async def scenario():
        return await asyncio.gather(
            submit_one(batcher, ["short"] * 2), submit_one(batcher, ["x" * 12]),
            return_exceptions=True,
        )

    small, huge = run(scenario())
    assert small[0] == [5, 5]
    assert isinstance(huge, InferenceError)
    assert "12 tokens" in str(huge) and "memory" in str(huge)
    assert isinstance(huge.__cause__, torch.OutOfMemoryError)


def test_a_failing_input_fails_only_its_own_job():
    batcher = batcher_for(LengthModel())

    async def scenario():
        return await asyncio.gather(
            submit_one(batcher, ["fine"]), submit_one(batcher, ["boom"]), submit_one(batcher, ["also fine"]),
            return_exceptions=True,
        )

    good, bad, also_good = run(scenario())
    assert good[0] == [4] and also_good[0] == [9]
    assert isinstance(bad, InferenceError)
    assert "cannot run 'boom'" in str(bad)


def test_large_requests_report_progress_as_batches_finish():
    seen = []
    batcher = batcher_for(LengthModel(), max_batch_size=4, max_wait=0)
    outputs, compute_ms = run(submit_one(batcher, ["x"] * 10, on_progress=seen.append))
    assert outputs == [1] * 10
    assert seen == [4, 8]  # The last batch completes the request; no progress call for it.
    assert compute_ms >= 0


def test_older_inputs_are_not_overtaken_by_a_stream_of_newer_ones():
    model = LengthModel()
    batcher = batcher_for(model, max_batch_size=2, max_batch_tokens=32, max_wait=0)
    window = WINDOW_BATCHES * 2

    async def scenario():
        old = asyncio.ensure_future(submit_one(batcher, ["x" * 16]))
        await asyncio.sleep(0)
        newer = [asyncio.ensure_future(submit_one(batcher, ["y"])) for _ in range(5 * window)]
        await old
        done_when_old_finished = sum(task.done() for task in newer)
        await asyncio.gather(*newer)
        return done_when_old_finished

    # The long input is in the first window, so at most a window's worth of short ones
    # (WINDOW_BATCHES batches) ran before it.
    assert run(scenario()) <= window


def test_a_lone_job_is_not_held_back_waiting_for_a_full_batch():
    batcher = batcher_for(LengthModel(), max_batch_size=1000, max_wait=0.005)
    outputs, _ = run(asyncio.wait_for(submit_one(batcher, ["solo"]), timeout=5))
    assert outputs == [4]


class GatedModel(LengthModel):
    """A LengthModel whose first batch waits for ``gate``: inputs queue up behind it, so the
    order of the batches after it is the batcher's choice alone."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()

    def run_batch(self, batch):
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return super().run_batch(batch)


async def queued_behind_a_running_batch(batcher, model, submissions):
    """Run a first batch that blocks, queue ``submissions`` ((values, priority, owner), in
    order) behind it, then let everything run; returns the runs' results."""
    first = asyncio.ensure_future(submit_one(batcher, ["z"], owner="first"))
    while not model.entered.is_set():
        await asyncio.sleep(0.001)
    runs = []
    for values, priority, owner in submissions:
        waiting = batcher._pending.items
        runs.append(asyncio.ensure_future(submit_one(batcher, values, priority=priority, owner=owner)))
        while batcher._pending.items < waiting + len(values):  # Prepared and queued.
            await asyncio.sleep(0.001)
    model.gate.set()
    await first
    return await asyncio.gather(*runs)


def first_batch_with(model, text):
    return next(index for index, batch in enumerate(model.batches) if text in batch)


def test_a_newcomer_is_served_within_about_one_batch_of_anothers_backlog():
    model = GatedModel()
    batcher = batcher_for(model, max_batch_size=4, max_wait=0)
    backlog = ["a" * (1 + n % 8) for n in range(2000)]

    results = run(queued_behind_a_running_batch(
        batcher, model, [(backlog, 0, "A"), (["b"], 0, "B")]
    ))

    assert results[1][0] == [1] and results[0][0] == [len(text) for text in backlog]
    # Batch 0 was running when both arrived; B, served least, goes next.
    assert first_batch_with(model, "b") == 1
    assert len(model.batches) > 500


def test_the_old_order_serves_a_newcomer_only_after_the_backlog_ahead_of_it():
    model = GatedModel()
    batcher = Batcher(model, max_batch_size=4, max_batch_tokens=64, max_wait=0, fair=False)
    backlog = ["a" * (1 + n % 8) for n in range(200)]

    run(queued_behind_a_running_batch(batcher, model, [(backlog, 0, "A"), (["b"], 0, "B")]))

    # Behind every full window of the backlog (200 inputs: three windows of 16 batches of 4).
    assert first_batch_with(model, "b") > 3 * WINDOW_BATCHES


def test_interactive_inputs_run_before_bulk_ones_that_waited_longer():
    model = GatedModel()
    batcher = batcher_for(model, max_batch_size=4, max_wait=0)

    run(queued_behind_a_running_batch(
        batcher, model, [(["bulk"] * 40, 0, "A"), (["i1", "i2"], 10, "B"), (["i3"], 10, "A")]
    ))

    # The interactive inputs of both owners come first, in a batch of their own.
    assert sorted(model.batches[1]) == ["i1", "i2", "i3"]


def test_owners_taking_turns_still_get_length_sorted_batches():
    rng = random.Random(0)
    model = GatedModel()
    batcher = batcher_for(model, max_batch_size=8, max_batch_tokens=128, max_wait=0)
    owners = [([("x" * rng.randint(1, 16)) for _ in range(400)], 0, owner) for owner in "ABC"]

    run(queued_behind_a_running_batch(batcher, model, owners))

    batches = model.batches[1:]
    real = sum(len(text) for batch in batches for text in batch)
    padded = sum(max(map(len, batch)) * len(batch) for batch in batches)
    assert padded <= 1.2 * real  # Unsorted batches of these lengths pad by about 70%.
    assert all(max(map(len, b)) * len(b) <= 128 and len(b) <= 8 for b in batches)


def test_owners_with_backlogs_get_equal_shares_of_the_batches():
    model = GatedModel()
    batcher = batcher_for(model, max_batch_size=8, max_wait=0)
    backlogs = [(["a" * (1 + n % 8) for n in range(400)], 0, "A"),
                (["b" * (1 + n % 8) for n in range(400)], 0, "B")]

    run(queued_behind_a_running_batch(batcher, model, backlogs))

    early = [text[0] for batch in model.batches[1:41] for text in batch]  # 40 of 100 batches
    assert 0.8 <= early.count("a") / early.count("b") <= 1.25
