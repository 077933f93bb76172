"""A runner model for tests of hung and paused runners, whose inputs say what a pass does:

- ``hang ...``: the pass blocks while the file named by ``HANGING_MODEL_FLAG`` exists (forever
  without that variable), as a wedged GPU or driver would;
- ``sleep:<seconds> ...``: the pass takes that long, so a test can pause a runner mid-batch;
- ``nul ...``: the output holds a NUL character, which PostgreSQL refuses to store;
- anything else runs at once.

Each output carries the runner's process id, so a test can tell whose result was stored. Tests
running a real runner process with it start ``tests.support.runner_with_test_models``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from gpu_runner.models.base import Packed
from inference_models.sentence_embedding.spec import EmbeddingSpec
from tests.support.text_model import TextModel


class HangingModel(TextModel):
    def run_batch(self, batch: list[str]) -> list[dict]:
        if any(item.startswith("hang") for item in batch):
            flag = os.environ.get("HANGING_MODEL_FLAG")
            while flag is None or Path(flag).exists():
                time.sleep(0.05)
        pause = max((float(item.split()[0][6:]) for item in batch if item.startswith("sleep:")), default=0)
        time.sleep(pause)
        return [
            {"pid": os.getpid(), "length": len(item), "note": "\x00" if item.startswith("nul") else ""}
            for item in batch
        ]

    def pack(self, outputs: list[dict]) -> Packed:
        return Packed(
            output={"dim": 1, "pid": outputs[0]["pid"], "notes": [o["note"] for o in outputs]},
            embeddings=np.array([[o["length"]] for o in outputs], dtype=np.float32),
        )


SPEC = EmbeddingSpec(
    name="test-hanging",
    title="Hangs, sleeps or answers on demand (tests only)",
    description="",
    implementation="tests.support.hanging_model:HangingModel",
    max_texts=16,
    max_chars=100,
    output_dim=1,
)
