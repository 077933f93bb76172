"""Runner-side model implementations: one module per model, each a ``RunnerModel``."""

from gpu_runner.models.base import InferenceError, Packed, RunnerModel

__all__ = ["InferenceError", "Packed", "RunnerModel"]
