"""The web's half of sentence embeddings: texts in, one unit vector per text out.

The vectors are stored as pgvector rows (``returns_embeddings``), served as JSON numbers, base64
or a .npy file; the page shows a few values of each and their cosine similarities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from product.inference.specs import ModelSpec, check_texts, texts_schema


@dataclass(frozen=True, kw_only=True)
class EmbeddingSpec(ModelSpec):
    max_texts: int
    max_chars: int
    #: Numbers in one embedding.
    output_dim: int
    returns_embeddings: bool = True

    def parse_input(self, raw: Any) -> list[str]:
        """Validate one text or a list of texts; return the list, or raise InputError."""
        return check_texts(raw, "input", max_texts=self.max_texts, max_chars=self.max_chars, model=self.name)

    def input_schema(self) -> dict:
        return texts_schema(max_texts=self.max_texts, max_chars=self.max_chars)

    def example_input(self) -> list[str]:
        return ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell today."]

    def facts(self) -> dict:
        return {"max_texts": self.max_texts, "max_chars": self.max_chars, "output_dim": self.output_dim}

    def present_result(self, inputs: list, output: dict, embeddings: np.ndarray | None) -> dict:
        return {"preview": self.preview(inputs, output, embeddings)}

    def preview(self, texts: list[str], output: dict, embeddings: np.ndarray | None) -> dict:
        """A few values per text and their similarities. ``embeddings`` is the (n, dim) float32
        array stored for the request (None: none)."""
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

    def result_schema(self) -> dict:
        return {
            "dim": {"type": "integer", "description": "Numbers in one embedding."},
            "embeddings": {
                "type": "array",
                "description": "One per input, in order: numbers, or base64 strings with encoding_format=base64.",
                "items": {"oneOf": [
                    {"type": "array", "items": {"type": "number"}},
                    {"type": "string", "contentEncoding": "base64"},
                ]},
            },
        }


SPEC = EmbeddingSpec(
    name="all-minilm-l6-v2",
    title="Sentence embeddings (all-MiniLM-L6-v2)",
    description=(
        "384-dimensional sentence embeddings: mean pooling over tokens, L2-normalised, so the "
        "dot product of two embeddings is their cosine similarity."
    ),
    implementation="inference_models.sentence_embedding.runner:SentenceEmbeddingModel",
    templates=Path(__file__).parent,
    max_texts=256,
    max_chars=4000,
    output_dim=384,
)
