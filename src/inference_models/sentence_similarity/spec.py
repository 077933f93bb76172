"""The web's half of sentence similarity: pairs of texts in, one score per pair out (the cosine
similarity of the two texts' all-MiniLM-L6-v2 embeddings, from -1 to 1).

``input`` is a list of pairs, ``[["first", "second"], ...]``; the form takes one pair a line,
its two texts split by a ``|``. The result is ``{"scores": [...]}``, one per pair, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django import forms

from product.inference.specs import (
    InputError,
    ModelSpec,
    check_text,
    lines,
    text_area,
    text_schema,
)


@dataclass(frozen=True, kw_only=True)
class SimilaritySpec(ModelSpec):
    max_pairs: int
    max_chars: int
    inputs_noun: str = "pairs"

    def parse_input(self, raw: Any) -> list[list[str]]:
        if not isinstance(raw, list):
            raise InputError('input must be a list of pairs of texts, e.g. [["a cat", "a kitten"]].')
        if not raw:
            raise InputError("input must contain at least one pair.")
        if len(raw) > self.max_pairs:
            raise InputError(f"input has {len(raw)} pairs; {self.name} accepts at most {self.max_pairs}.")
        pairs = []
        for index, pair in enumerate(raw):
            where = f"input[{index}]"
            if not isinstance(pair, list) or len(pair) != 2:
                raise InputError(f"{where} must be a pair: a list of two texts.")
            pairs.append([check_text(text, f"{where}[{side}]", max_chars=self.max_chars)
                          for side, text in enumerate(pair)])
        return pairs

    def input_schema(self) -> dict:
        text = text_schema(self.max_chars)
        pair = {"type": "array", "items": text, "minItems": 2, "maxItems": 2}
        return {"type": "array", "items": pair, "minItems": 1, "maxItems": self.max_pairs}

    def example_input(self) -> list[list[str]]:
        return [
            ["A cat sits on the mat.", "A kitten rests on a rug."],
            ["A cat sits on the mat.", "Stock markets fell sharply today."],
        ]

    def facts(self) -> dict:
        return {"max_pairs": self.max_pairs, "max_chars": self.max_chars}

    def form_fields(self) -> dict[str, forms.Field]:
        return {
            "text": text_area(
                "Pairs", "One pair per line: its two texts split by a | (vertical bar); each line is scored.",
                placeholder="A cat sits on the mat. | A kitten rests on a rug.",
            )
        }

    def form_input(self, cleaned_data: dict) -> list[list[str]]:
        pairs = []
        for number, line in enumerate(lines(cleaned_data["text"]), start=1):
            first, bar, second = line.partition("|")
            if not bar or "|" in second:
                raise InputError(f"line {number} must hold two texts split by one |.")
            pairs.append([first.strip(), second.strip()])
        return pairs

    def present_inputs(self, inputs: list) -> dict:
        return {"pairs": inputs}

    def present_result(self, inputs: list, output: dict, embeddings: Any) -> dict:
        rows = [
            {"first": first, "second": second, "score": round(score, 4),
             "width": round(max(score, 0.0) * 100)}
            for (first, second), score in zip(inputs, output.get("scores", []))
        ]
        return {"rows": rows}

    def result_schema(self) -> dict:
        return {
            "scores": {
                "type": "array",
                "description": "One per pair, in order: the cosine similarity of its two texts' embeddings.",
                "items": {"type": "number", "minimum": -1, "maximum": 1},
            }
        }


SPEC = SimilaritySpec(
    name="all-minilm-l6-v2-similarity",
    title="Sentence similarity (all-MiniLM-L6-v2)",
    description=(
        "Pairs of texts in, a score for each pair out: the cosine similarity of the two texts' "
        "all-MiniLM-L6-v2 embeddings, from -1 (opposite) through 0 (unrelated) to 1 (the same)."
    ),
    implementation="inference_models.sentence_similarity.runner:SentenceSimilarityModel",
    templates=Path(__file__).parent,
    max_pairs=128,
    max_chars=4000,
)
