"""Models built on the same weights share one loaded copy on the device: a runner hosting the
embedding, similarity and zero-shot models holds all-MiniLM-L6-v2 once, and all three run on
that copy's very tensors."""

import torch

from gpu_runner import runtime, weights
from gpu_runner.sentence_encoder import WEIGHTS
from product.inference.registry import REGISTRY

MINILM_MODELS = ["all-minilm-l6-v2", "all-minilm-l6-v2-similarity", "all-minilm-l6-v2-zero-shot"]


def test_the_minilm_models_of_one_runner_share_one_copy_of_the_weights(settings, monkeypatch):
    assert set(MINILM_MODELS) <= set(REGISTRY)
    settings.GPU_RUNNER_MODELS = MINILM_MODELS
    settings.GPU_RUNNER_DEVICE = "cpu"
    settings.GPU_RUNNER_MAX_BATCH_SIZE = 4
    settings.GPU_RUNNER_MAX_BATCH_TOKENS = 1024
    monkeypatch.setattr(runtime, "_current", None)
    monkeypatch.setattr(weights, "_loaded", {})

    loaded = runtime.load_runtime()

    encoders = {id(model.encoder) for model in loaded.models.values()}
    assert len(encoders) == 1
    pointers = {
        next(model.encoder.model.parameters()).data_ptr() for model in loaded.models.values()
    }
    assert len(pointers) == 1
    assert weights.loaded_weights() == [(WEIGHTS, "cpu", torch.float32)]


def test_another_dtype_is_another_copy(monkeypatch):
    monkeypatch.setattr(weights, "_loaded", {})
    calls = []
    first = weights.shared_weights("w", torch.device("cpu"), torch.float32, lambda: calls.append(1) or object())
    again = weights.shared_weights("w", torch.device("cpu"), torch.float32, lambda: calls.append(2) or object())
    other = weights.shared_weights("w", torch.device("cpu"), torch.bfloat16, lambda: calls.append(3) or object())
    assert first is again and other is not first and calls == [1, 3]
