"""What every runner-side model implements: load once, run a batch of inputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from product.inference.specs import ModelSpec


class InferenceError(Exception):
    """An input could not be run; the message is shown to the user on their request."""


class RunnerModel(ABC):
    """A model the runner hosts. Subclasses say how to load it and how to run one batch;
    the runner owns the rest (device choice, batching, retries, writing results)."""

    def __init__(self, *, spec: ModelSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device

    @abstractmethod
    def load(self) -> None:
        """Load weights onto ``self.device``. Called once, before any job is taken."""

    @abstractmethod
    def run_batch(self, items: list[str]) -> list[Any]:
        """Run one forward pass over ``items``; return one JSON-ready output per item."""

    def warm_up(self, batch_size: int) -> None:
        """Run a full-size batch so kernels, allocator and caches are ready before jobs come."""
        self.run_batch(["The runner warms up before it takes any job."] * batch_size)

    @abstractmethod
    def pack(self, outputs: list[Any]) -> dict:
        """The request's stored result, from the outputs of its items in order."""
