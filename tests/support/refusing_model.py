"""A runner model for tests of the failure path: it refuses every input while ``refuse`` is set,
and crashes packing its result (a bug in the runner, not a bad input) while ``crash`` is set.

The real model cannot be made to fail on demand; this one runs through the very same runner,
queue and database code, so only the model's answer is chosen by the test."""

from __future__ import annotations

import numpy as np

from gpu_runner.models.base import InferenceError, Packed
from inference_models.sentence_embedding.spec import EmbeddingSpec
from tests.support.text_model import TextModel


class RefusingModel(TextModel):
    refuse = False
    crash = False
    def run_batch(self, batch: list[str]) -> list[list[float]]:
        if RefusingModel.refuse:
            raise InferenceError("this test model refuses its input")
        return [[float(len(item))] for item in batch]

    def pack(self, outputs: list[list[float]]) -> Packed:
        if RefusingModel.crash:
            raise RuntimeError("the test model crashed")
        return Packed(output={"dim": 1}, embeddings=np.array(outputs, dtype=np.float32))


SPEC = EmbeddingSpec(
    name="test-refusing",
    title="Refuses on demand (tests only)",
    description="",
    implementation="tests.support.refusing_model:RefusingModel",
    max_texts=4,
    max_chars=100,
    output_dim=1,
)
