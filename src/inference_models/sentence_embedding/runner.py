"""The runner's half of sentence embeddings: each text's all-MiniLM-L6-v2 unit vector
(``gpu_runner.sentence_encoder``, whose weights it shares with the other MiniLM models).

A batch comes back as one float32 numpy array: its rows go to the requests, and a request's
rows are stored as pgvector values in binary.
"""

from __future__ import annotations

import numpy as np

from gpu_runner.models.base import Packed, RunnerModel
from gpu_runner.sentence_encoder import SentenceEncoder, TokenIds, minilm_encoder


class SentenceEmbeddingModel(RunnerModel):
    max_input_tokens = SentenceEncoder.max_tokens

    def load(self) -> None:
        self.encoder = minilm_encoder(self.device, self.dtype)
        self.model, self.tokenizer = self.encoder.model, self.encoder.tokenizer
        self.token_ids = TokenIds(self.encoder)

    def prepare(self, inputs: list[str]) -> list[list[int]]:
        return self.token_ids.of(inputs)

    def synthetic_input(self, tokens: int) -> list[int]:
        return self.token_ids.synthetic(tokens)

    def run_batch(self, batch: list[list[int]]) -> np.ndarray:
        return self.encoder.embed(batch)

    def pack(self, outputs: list[np.ndarray]) -> Packed:
        return Packed(output={"dim": self.spec.output_dim}, embeddings=np.stack(outputs))
