"""The runner's half of sentence similarity: both texts of every pair in a batch are embedded in
one forward pass of the shared all-MiniLM-L6-v2 encoder, and each pair's score is the dot
product of its two unit vectors (their cosine similarity)."""

from __future__ import annotations

import numpy as np

from gpu_runner.models.base import Packed, RunnerModel
from gpu_runner.sentence_encoder import SentenceEncoder, TokenIds, minilm_encoder

Pair = tuple[list[int], list[int]]


class SentenceSimilarityModel(RunnerModel):
    # Both texts of a pair, each truncated as the encoder is.
    max_input_tokens = 2 * SentenceEncoder.max_tokens

    def load(self) -> None:
        self.encoder = minilm_encoder(self.device, self.dtype)
        self.token_ids = TokenIds(self.encoder)

    def prepare(self, inputs: list[list[str]]) -> list[Pair]:
        ids = self.token_ids.of([text for pair in inputs for text in pair])
        return list(zip(ids[0::2], ids[1::2]))

    def count_tokens(self, prepared: Pair) -> int:
        # The pass pads both texts to the batch's longest: a pair costs twice its longer text.
        return 2 * max(len(prepared[0]), len(prepared[1]))

    def synthetic_input(self, tokens: int) -> Pair:
        half = self.token_ids.synthetic(max(tokens // 2, 2))
        return half, half

    def run_batch(self, batch: list[Pair]) -> np.ndarray:
        vectors = self.encoder.embed([ids for pair in batch for ids in pair])
        return (vectors[0::2] * vectors[1::2]).sum(axis=1)

    def pack(self, outputs: list[np.float32]) -> Packed:
        return Packed(output={"scores": [round(float(score), 6) for score in outputs]})
