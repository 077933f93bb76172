"""The light half of each model: what the web needs to accept work and show results.

A spec names its model, validates input, and describes its output. Its heavy half (loading
weights, running a batch) lives in ``gpu_runner.models`` and is named here only by import path,
so importing this module never imports torch. docs/adding-a-model.md walks through adding one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# Half of a UTF-16 pair on its own: JSON can escape one ("\ud800"), but it is not a character,
# and PostgreSQL refuses to store it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(ValueError):
    """The submitted input is not acceptable; the message says why, for the user."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    description: str
    # "module.path:ClassName" of the runner-side implementation (see gpu_runner.models).
    implementation: str
    max_texts: int
    max_chars: int
    output_dim: int

    @property
    def queue(self) -> str:
        """Procrastinate queue for this model's jobs: a runner listens to the models it hosts."""
        return f"model.{self.name}"

    def parse_input(self, raw: Any) -> list[str]:
        """Validate one text or a list of texts; return the list, or raise InputError."""
        if isinstance(raw, str):
            texts = [raw]
        elif isinstance(raw, list):
            texts = raw
        else:
            raise InputError("input must be a string or a list of strings.")
        if not texts:
            raise InputError("input must contain at least one text.")
        if len(texts) > self.max_texts:
            raise InputError(
                f"input has {len(texts)} texts; {self.name} accepts at most {self.max_texts}."
            )
        for index, text in enumerate(texts):
            where = "input" if isinstance(raw, str) else f"input[{index}]"
            if not isinstance(text, str):
                raise InputError(f"{where} must be a string, not {type(text).__name__}.")
            if not text.strip():
                raise InputError(f"{where} is empty.")
            if len(text) > self.max_chars:
                raise InputError(
                    f"{where} has {len(text)} characters; at most {self.max_chars} are allowed."
                )
            if "\x00" in text:
                raise InputError(f"{where} contains a NUL character.")
            if _LONE_SURROGATE.search(text):
                raise InputError(f"{where} contains a lone UTF-16 surrogate, which is not text.")
        return texts

    def input_schema(self) -> dict:
        """JSON Schema of ``input`` for the OpenAPI document."""
        text = {"type": "string", "minLength": 1, "maxLength": self.max_chars}
        return {
            "oneOf": [text, {"type": "array", "items": text, "minItems": 1, "maxItems": self.max_texts}]
        }

    def preview(self, texts: list[str], output: dict, embeddings: np.ndarray | None) -> dict:
        """What the request page shows of a result: a few values per text and similarities.
        ``embeddings`` is the (n, dim) float32 array stored for the request (None: none)."""
        if embeddings is None:
            return {"dim": output.get("dim"), "rows": [], "similarity": []}
        vectors = embeddings.astype(np.float64)  # Rounded float64 values print as typed.
        heads = np.round(vectors[:, :6], 4).tolist()
        norms = np.round(np.linalg.norm(vectors, axis=1), 4).tolist()
        rows = [
            {"text": text, "head": head, "norm": norm}
            for text, head, norm in zip(texts, heads, norms)
        ]
        shown = vectors[:8]
        similarity = np.round(shown @ shown.T, 3).tolist()
        return {"dim": output.get("dim"), "rows": rows, "similarity": similarity}


MINILM = ModelSpec(
    name="all-minilm-l6-v2",
    title="Sentence embeddings (all-MiniLM-L6-v2)",
    description=(
        "384-dimensional sentence embeddings: mean pooling over tokens, L2-normalised, so the "
        "dot product of two embeddings is their cosine similarity."
    ),
    implementation="gpu_runner.models.sentence_embedding:SentenceEmbeddingModel",
    max_texts=256,
    max_chars=4000,
    output_dim=384,
)

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in [MINILM]}
DEFAULT_MODEL = MINILM.name


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``; InputError naming the known models otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise InputError(f"unknown model {name!r}; known models: {known}.") from None
