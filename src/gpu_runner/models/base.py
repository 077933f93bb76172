"""What every runner-side model implements: prepare inputs, run a batch, pack a result."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from product.inference.specs import ModelSpec


class InferenceError(Exception):
    """An input could not be run; the message is shown to the user on their request."""


@dataclass(frozen=True)
class Packed:
    """A request's result as the runner stores it: a small JSON part, and the embeddings apart.

    ``output`` is stored as JSON on the request (e.g. ``{"dim": 384}``). ``embeddings``, an
    (n, dim) float32 array whose row i belongs to input i, goes to PostgreSQL as pgvector rows
    in binary (``product.inference.results``): as JSON text each 384-float row would be ~7 KB
    for PostgreSQL to parse, as binary it is 1.5 KB copied as it is."""

    output: dict | None
    embeddings: np.ndarray | None = None


class RunnerModel(ABC):
    """A model the runner hosts. Subclasses say how to load it, prepare inputs and run one
    batch; the runner owns the rest (device, batching, splitting failed batches, results).

    ``prepare`` runs in a thread of its own, so it overlaps the forward pass of the batch
    before; ``run_batch`` runs in the model's thread, one batch at a time.
    """

    #: The most tokens one prepared input can have (longer inputs are truncated by prepare).
    max_input_tokens: int = 1

    def __init__(self, *, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype

    @abstractmethod
    def load(self) -> None:
        """Load weights onto ``self.device`` in ``self.dtype``. Called once, before any job."""

    @abstractmethod
    def prepare(self, inputs: list[Any]) -> list[Any]:
        """Turn inputs into what ``run_batch`` takes (e.g. token ids), one per input."""

    def count_tokens(self, prepared: Any) -> int:
        """The size of one prepared input, in the unit of the batch budget."""
        return len(prepared)

    @abstractmethod
    def run_batch(self, batch: list[Any]) -> Sequence[Any]:
        """Run one forward pass over prepared inputs; one output per input, in order (e.g. an
        (n, dim) array, whose rows are the outputs)."""

    @abstractmethod
    def synthetic_input(self, tokens: int) -> Any:
        """A prepared input of ``tokens`` tokens (or the fewest the model allows), for warm-up."""

    def warm_up(self, *, max_batch_size: int, max_batch_tokens: int) -> None:
        """Run the largest batches the budget allows (the most inputs, and the longest), so
        kernels and memory are ready and a budget too big for the device fails at start."""
        longest = min(self.max_input_tokens, max_batch_tokens)
        shapes = {
            (max(1, min(max_batch_size, max_batch_tokens // longest)), longest),
            (max_batch_size, max(1, min(longest, max_batch_tokens // max_batch_size))),
        }
        for count, tokens in sorted(shapes):
            self.run_batch([self.synthetic_input(tokens)] * count)

    @abstractmethod
    def pack(self, outputs: list[Any]) -> Packed:
        """The request's stored result, from the outputs of its inputs in order."""

    def recover(self, error: Exception) -> None:
        """Called after a batch failed, before its halves run: free what the failure left."""
        if isinstance(error, torch.OutOfMemoryError) and self.device.type == "cuda":
            torch.cuda.empty_cache()

    def explain(self, error: Exception, prepared: Any) -> InferenceError:
        """The error the user sees when this one input cannot run, even alone."""
        if isinstance(error, InferenceError):
            return error
        if isinstance(error, torch.OutOfMemoryError):
            return InferenceError(
                f"this input ({self.count_tokens(prepared)} tokens) needs more {self.device.type} "
                "memory than the runner has free, even on its own"
            )
        return InferenceError(f"the model could not run this input: {error}")

