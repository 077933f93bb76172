"""Weights shared by the models of one runner process: loaded once per (weights, device, dtype).

Several models can be built on the same weights (embeddings, similarity and zero-shot
classification all run all-MiniLM-L6-v2): each asks for them here, and the first to ask loads
them, so the device holds one copy. Forward passes only read the weights, so models running
in threads of their own can share them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import torch

T = TypeVar("T")

_loaded: dict[tuple[str, str, torch.dtype], Any] = {}
_lock = threading.Lock()


def shared_weights(weights: str, device: torch.device, dtype: torch.dtype, load: Callable[[], T]) -> T:
    """What ``load()`` returned the first time ``weights`` were asked for on this device in this
    dtype (``load`` runs then, once, under a lock: two models loading together load one copy)."""
    key = (weights, str(device), dtype)
    with _lock:
        if key not in _loaded:
            _loaded[key] = load()
        return _loaded[key]


def loaded_weights() -> list[tuple[str, str, torch.dtype]]:
    """The (weights, device, dtype) held now, for logs and tests."""
    with _lock:
        return list(_loaded)
