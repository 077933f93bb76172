"""The runner's half of zero-shot classification: a batch's texts are embedded in one forward
pass of the shared all-MiniLM-L6-v2 encoder and its distinct labels in another, each as the
sentence "This text is about <label>." (the texts of a request share their labels, so each is
embedded once per batch); a label's score is the dot product of its unit vector and the text's
(their cosine similarity)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_runner.models.base import Packed, RunnerModel
from gpu_runner.sentence_encoder import SentenceEncoder, TokenIds, minilm_encoder

# A label is embedded in this sentence: on a few test texts it widened the right label's lead
# over the next, against the bare label (the model was trained on sentences).
HYPOTHESIS = "This text is about {}."
# A label is a word or a few: tokens past these (the template's included) are dropped.
LABEL_TOKENS = 32


@dataclass(frozen=True)
class Classification:
    """One text's prepared input: its token ids, and its labels with theirs."""

    text: list[int]
    labels: tuple[str, ...]
    label_ids: tuple[tuple[int, ...], ...]


class ZeroShotClassificationModel(RunnerModel):
    @property
    def max_input_tokens(self) -> int:
        return SentenceEncoder.max_tokens + self.spec.max_labels * LABEL_TOKENS

    def load(self) -> None:
        self.encoder = minilm_encoder(self.device, self.dtype)
        self.token_ids = TokenIds(self.encoder)
        self.label_ids = TokenIds(self.encoder, max_tokens=LABEL_TOKENS)

    def prepare(self, inputs: list[dict]) -> list[Classification]:
        texts = self.token_ids.of([item["text"] for item in inputs])
        distinct = sorted({label for item in inputs for label in item["labels"]})
        hypotheses = self.label_ids.of([HYPOTHESIS.format(label) for label in distinct])
        ids = dict(zip(distinct, (tuple(each) for each in hypotheses)))
        return [
            Classification(text, tuple(item["labels"]), tuple(ids[label] for label in item["labels"]))
            for text, item in zip(texts, inputs)
        ]

    def count_tokens(self, prepared: Classification) -> int:
        # The texts' pass pads to the longest text; the labels' to the longest label.
        return len(prepared.text) + len(prepared.label_ids) * max(map(len, prepared.label_ids))

    def synthetic_input(self, tokens: int) -> Classification:
        label = tuple(self.label_ids.synthetic(3))
        return Classification(self.token_ids.synthetic(max(tokens - 6, 2)), ("a", "b"), (label, label))

    def run_batch(self, batch: list[Classification]) -> list[dict]:
        texts = self.encoder.embed([item.text for item in batch])
        distinct = list(dict.fromkeys(ids for item in batch for ids in item.label_ids))
        labels = self.encoder.embed([list(ids) for ids in distinct])
        row = {ids: index for index, ids in enumerate(distinct)}
        outputs = []
        for vector, item in zip(texts, batch):
            scores = labels[[row[ids] for ids in item.label_ids]] @ vector
            order = np.argsort(-scores, kind="stable")
            outputs.append({
                "labels": [item.labels[i] for i in order],
                "scores": [round(float(scores[i]), 6) for i in order],
            })
        return outputs

    def pack(self, outputs: list[dict]) -> Packed:
        return Packed(output={"results": outputs})
