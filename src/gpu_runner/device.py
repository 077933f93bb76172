"""Which torch device the runner uses: CUDA when present (or asked for), CPU otherwise."""

from __future__ import annotations

import torch


def pick_device(preference: str) -> torch.device:
    """``auto`` picks CUDA when torch sees a GPU; ``cpu``, ``cuda`` or ``cuda:N`` force one."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"GPU_RUNNER_DEVICE={preference} but torch sees no CUDA device.")
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_dtype(preference: str, device: torch.device) -> torch.dtype:
    """``auto`` is float16 on CUDA (half the memory traffic; pooling and normalisation stay
    float32) and float32 on CPU, where half precision is slower, not faster."""
    if preference == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[preference]
    except KeyError:
        raise RuntimeError(
            f"GPU_RUNNER_DTYPE={preference!r}; choose auto, {', '.join(_DTYPES)}."
        ) from None
