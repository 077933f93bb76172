"""The models this runner hosts: loaded and warmed up once, then shared by every job."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from django.conf import settings
from django.utils.module_loading import import_string

from gpu_runner.batcher import Batcher
from gpu_runner.device import describe, pick_device, pick_dtype
from gpu_runner.models.base import RunnerModel
from gpu_runner.weights import loaded_weights
from product.inference.registry import REGISTRY, get_spec
from product.inference.specs import ModelSpec

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    models: dict[str, RunnerModel]
    batchers: dict[str, Batcher]

    @property
    def specs(self) -> list[ModelSpec]:
        return [model.spec for model in self.models.values()]

    @property
    def device(self) -> torch.device:
        """The device the models run on (all of them on one: ``GPU_RUNNER_DEVICE``)."""
        return next(iter(self.models.values())).device

    def batcher(self, model_name: str) -> Batcher:
        return self.batchers[model_name]


_current: Runtime | None = None


def hosted_models() -> list[str]:
    """The models this runner hosts: ``GPU_RUNNER_MODELS`` (empty: every registered model)
    less ``GPU_RUNNER_EXCLUDE_MODELS``, so a runner group can host "every model but those
    that have runners of their own", models added later included. A name not registered
    stops start-up (InputError naming the known ones), as does hosting none."""
    excluded = [get_spec(name).name for name in settings.GPU_RUNNER_EXCLUDE_MODELS]
    names = [get_spec(name).name for name in settings.GPU_RUNNER_MODELS] or list(REGISTRY)
    names = [name for name in names if name not in excluded]
    if not names:
        raise ValueError("this runner hosts no model: GPU_RUNNER_EXCLUDE_MODELS leaves none")
    return names


def load_runtime() -> Runtime:
    """Load each hosted model (``GPU_RUNNER_MODELS``) onto the device and warm it up with the
    largest batches the budget allows, so a budget the device cannot hold fails here."""
    global _current
    device = pick_device(settings.GPU_RUNNER_DEVICE)
    dtype = pick_dtype(settings.GPU_RUNNER_DTYPE, device)
    names = hosted_models()
    logger.info("device: %s, %s; models: %s", describe(device), dtype, ", ".join(names))
    models: dict[str, RunnerModel] = {}
    batchers: dict[str, Batcher] = {}
    budget = {
        "max_batch_size": settings.GPU_RUNNER_MAX_BATCH_SIZE,
        "max_batch_tokens": settings.GPU_RUNNER_MAX_BATCH_TOKENS,
    }
    began = time.perf_counter()
    for name in names:
        spec = get_spec(name)
        started = time.perf_counter()
        model = import_string(spec.implementation.replace(":", "."))(
            spec=spec, device=device, dtype=dtype
        )
        model.load()
        loaded = time.perf_counter()
        batchers[name] = Batcher(
            model, max_wait=settings.GPU_RUNNER_BATCH_WAIT_MS / 1000,
            batch_timeout=settings.GPU_RUNNER_BATCH_TIMEOUT, fair=settings.GPU_RUNNER_FAIR,
            **budget,
        )
        model.warm_up(**budget)
        logger.info(
            "%s: loaded (weights shared when already loaded) %.2f s, warmed up (batches of up to "
            "%d inputs / %d tokens) %.2f s",
            name, loaded - started, budget["max_batch_size"], budget["max_batch_tokens"],
            time.perf_counter() - loaded,
        )
        models[name] = model
    logger.info(
        "%d model(s) loaded in %.2f s, on %d copy(ies) of weights: %s", len(models),
        time.perf_counter() - began, len(loaded_weights()), ", ".join(w for w, _, _ in loaded_weights()),
    )
    _current = Runtime(models=models, batchers=batchers)
    return _current


def current_runtime() -> Runtime:
    """The loaded runtime; loads it on first use (e.g. when a test runs the task in-process)."""
    return _current or load_runtime()
