"""The web's half of zero-shot classification: texts and the candidate labels to rank them by,
both given in the request; for each text its labels ranked, each with its score (the cosine
similarity of the text's all-MiniLM-L6-v2 embedding and that of "This text is about <label>.").

``input`` is ``{"texts": "one" | ["one", ...], "labels": ["sport", "finance", ...]}``; each text
is one input (with the request's labels). The result is ``{"results": [{"labels": [...],
"scores": [...]}, ...]}``, one per text, labels best first.
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
    check_texts,
    lines,
    text_area,
    texts_schema,
)


@dataclass(frozen=True, kw_only=True)
class ZeroShotSpec(ModelSpec):
    max_texts: int
    max_chars: int
    max_labels: int
    max_label_chars: int

    def parse_input(self, raw: Any) -> list[dict]:
        if not isinstance(raw, dict) or set(raw) != {"texts", "labels"}:
            raise InputError('input must be an object with "texts" and "labels" (and nothing else).')
        texts = check_texts(raw["texts"], "input.texts", max_texts=self.max_texts,
                            max_chars=self.max_chars, model=self.name)
        labels = raw["labels"]
        if not isinstance(labels, list) or len(labels) < 2:
            raise InputError("input.labels must be a list of at least two labels.")
        if len(labels) > self.max_labels:
            raise InputError(f"input.labels has {len(labels)} labels; at most {self.max_labels} are allowed.")
        labels = [check_text(label, f"input.labels[{index}]", max_chars=self.max_label_chars)
                  for index, label in enumerate(labels)]
        if len(set(labels)) != len(labels):
            raise InputError("input.labels has the same label twice.")
        return [{"text": text, "labels": labels} for text in texts]

    def input_schema(self) -> dict:
        label = {"type": "string", "minLength": 1, "maxLength": self.max_label_chars, "pattern": r"\S"}
        return {
            "type": "object",
            "required": ["texts", "labels"],
            "additionalProperties": False,
            "properties": {
                "texts": texts_schema(max_texts=self.max_texts, max_chars=self.max_chars),
                "labels": {"type": "array", "items": label, "minItems": 2,
                           "maxItems": self.max_labels, "uniqueItems": True},
            },
        }

    def example_input(self) -> dict:
        return {
            "texts": ["The striker scored twice in the final minutes.", "Shares fell after the bank raised rates."],
            "labels": ["sports", "finance", "cooking"],
        }

    def facts(self) -> dict:
        return {"max_texts": self.max_texts, "max_chars": self.max_chars,
                "max_labels": self.max_labels, "max_label_chars": self.max_label_chars}

    def form_fields(self) -> dict[str, forms.Field]:
        return {
            "text": text_area("Texts", "One text per line; each is classified."),
            "labels": forms.CharField(
                label="Candidate labels", max_length=2000,
                widget=forms.TextInput(attrs={"placeholder": "sports, finance, cooking"}),
                help_text=f"Labels split by commas (2 to {self.max_labels}); each text's are ranked best first.",
            ),
        }

    def form_input(self, cleaned_data: dict) -> dict:
        labels = [label.strip() for label in cleaned_data["labels"].split(",") if label.strip()]
        return {"texts": lines(cleaned_data["text"]), "labels": labels}

    def present_inputs(self, inputs: list) -> dict:
        return {"texts": [item["text"] for item in inputs], "labels": inputs[0]["labels"] if inputs else []}

    def present_result(self, inputs: list, output: dict, embeddings: Any) -> dict:
        rows = [
            {"text": item["text"], "ranked": [
                {"label": label, "score": round(score, 4), "width": round(max(score, 0.0) * 100)}
                for label, score in zip(ranked["labels"], ranked["scores"])
            ]}
            for item, ranked in zip(inputs, output.get("results", []))
        ]
        return {"rows": rows}

    def result_schema(self) -> dict:
        ranked = {
            "type": "object",
            "properties": {
                "labels": {"type": "array", "items": {"type": "string"}, "description": "The request's labels, best first."},
                "scores": {"type": "array", "items": {"type": "number", "minimum": -1, "maximum": 1},
                           "description": "Each label's score, in the same order: cosine similarity of the text and \"This text is about <label>.\""},
            },
        }
        return {"results": {"type": "array", "items": ranked, "description": "One per text, in order."}}


SPEC = ZeroShotSpec(
    name="all-minilm-l6-v2-zero-shot",
    title="Zero-shot classification (all-MiniLM-L6-v2)",
    description=(
        "Texts and candidate labels in, each text's labels ranked out: a label's score is the "
        "cosine similarity of the text's all-MiniLM-L6-v2 embedding and that of \"This text is "
        "about <label>.\" No training: any labels, given with the request."
    ),
    implementation="inference_models.zero_shot_classification.runner:ZeroShotClassificationModel",
    templates=Path(__file__).parent,
    max_texts=128,
    max_chars=4000,
    max_labels=16,
    max_label_chars=100,
)
