"""The base of the test models: a runner model whose inputs are plain strings, run as they are.

Tests choose only what a pass does (``run_batch``) and what a result is (``pack``); loading,
preparing and warming up are the same for all of them, and cost nothing."""

from __future__ import annotations

from gpu_runner.models.base import RunnerModel


class TextModel(RunnerModel):
    max_input_tokens = 100

    def load(self) -> None:
        pass

    def prepare(self, inputs: list[str]) -> list[str]:
        return list(inputs)

    def synthetic_input(self, tokens: int) -> str:
        return "w" * tokens
