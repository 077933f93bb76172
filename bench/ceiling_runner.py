"""``python -m bench.ceiling_runner``: the real runner entry point (``gpu_runner.__main__``) with
every registered model's forward pass replaced by a constant output, as if the accelerator were
infinitely fast. Only ``bench/pipeline_ceiling.py`` starts it; it is never a product model.

Everything else stays real: tokenising (``prepare``), batching, the queue, claiming and storing
results. The constant is the model's real output for one short input, computed on the first call
(the runner's warm-up) and repeated once per input in the container ``run_batch`` returns, so what
the runner does with it (packing, serialising, writing) costs what it costs with the real model.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
from django.utils.module_loading import import_string

import gpu_runner
from gpu_runner.__main__ import main
from product.inference.registry import REGISTRY

# What pipeline_ceiling.py reads from this process's log to show which tree's code runs.
CODE_LINE = "ceiling runner: gpu_runner from"


def repeated(output, count: int):
    """``count`` copies of a one-input batch's ``output``, in the same container and dtype."""
    if isinstance(output, np.ndarray):
        return np.ascontiguousarray(np.broadcast_to(output, (count, *output.shape[1:])))
    if isinstance(output, list):
        return [copy.copy(output[0]) for _ in range(count)]
    raise TypeError(f"run_batch returned a {type(output).__name__}; expected a list or an ndarray")


def constant_forward(model_class: type) -> None:
    """Replace ``model_class.run_batch`` by one that returns its real output for one short
    input (computed once per model), repeated for every input of the batch."""
    real_run_batch = model_class.run_batch

    def run_batch(self, batch):
        if "_ceiling_output" not in self.__dict__:
            self._ceiling_output = real_run_batch(self, [self.synthetic_input(16)])
        return repeated(self._ceiling_output, len(batch))

    model_class.run_batch = run_batch


for implementation in {spec.implementation for spec in REGISTRY.values()}:
    constant_forward(import_string(implementation.replace(":", ".")))

if __name__ == "__main__":
    print(CODE_LINE, Path(gpu_runner.__file__).parent, flush=True)
    sys.exit(main())
