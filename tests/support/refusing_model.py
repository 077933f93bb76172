"""A runner model for tests of the failure path: it refuses every input while ``refuse`` is set.

The real model cannot be made to fail on demand; this one runs through the very same runner,
queue and database code, so only the model's answer is chosen by the test."""

from __future__ import annotations

from gpu_runner.models.base import InferenceError, RunnerModel
from product.inference.specs import ModelSpec


class RefusingModel(RunnerModel):
    refuse = False

    def load(self) -> None:
        pass

    def run_batch(self, items: list[str]) -> list[list[float]]:
        if RefusingModel.refuse:
            raise InferenceError("this test model refuses its input")
        return [[float(len(item))] for item in items]

    def pack(self, outputs: list[list[float]]) -> dict:
        return {"dim": 1, "embeddings": outputs}


SPEC = ModelSpec(
    name="test-refusing",
    title="Refuses on demand (tests only)",
    description="",
    implementation="tests.support.refusing_model:RefusingModel",
    max_texts=4,
    max_chars=100,
    output_dim=1,
)
