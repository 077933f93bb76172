"""The models this runner hosts: loaded and warmed up once, then shared by every job."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from gpu_runner.batcher import Batcher
from gpu_runner.device import describe, pick_device
from gpu_runner.models.base import RunnerModel
from product.inference.specs import REGISTRY, ModelSpec, get_spec

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    models: dict[str, RunnerModel]
    batchers: dict[str, Batcher]

    @property
    def specs(self) -> list[ModelSpec]:
        return [model.spec for model in self.models.values()]

    def batcher(self, model_name: str) -> Batcher:
        return self.batchers[model_name]


_current: Runtime | None = None


def load_runtime() -> Runtime:
    """Load, move to the device and warm up each hosted model (``GPU_RUNNER_MODELS``)."""
    global _current
    device = pick_device(settings.GPU_RUNNER_DEVICE)
    names = settings.GPU_RUNNER_MODELS or list(REGISTRY)
    logger.info("device: %s; models: %s", describe(device), ", ".join(names))
    models: dict[str, RunnerModel] = {}
    batchers: dict[str, Batcher] = {}
    for name in names:
        spec = get_spec(name)
        started = time.perf_counter()
        model = import_string(spec.implementation.replace(":", "."))(spec=spec, device=device)
        model.load()
        loaded = time.perf_counter()
        model.warm_up(settings.GPU_RUNNER_MAX_BATCH_SIZE)
        logger.info(
            "%s: loaded in %.2f s, warmed up (batch %d) in %.2f s",
            name, loaded - started, settings.GPU_RUNNER_MAX_BATCH_SIZE,
            time.perf_counter() - loaded,
        )
        models[name] = model
        batchers[name] = Batcher(
            model,
            max_batch_size=settings.GPU_RUNNER_MAX_BATCH_SIZE,
            max_wait=settings.GPU_RUNNER_BATCH_WAIT_MS / 1000,
        )
    _current = Runtime(models=models, batchers=batchers)
    return _current


def current_runtime() -> Runtime:
    """The loaded runtime; loads it on first use when a plain Procrastinate worker runs jobs."""
    return _current or load_runtime()
