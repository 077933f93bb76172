"""The real all-MiniLM-L6-v2 runner model on small inputs: half precision keeps the embeddings
(pooling and normalisation stay float32), and warm-up builds inputs of exact lengths."""

import pytest
import torch

from gpu_runner.models.sentence_embedding import SentenceEmbeddingModel
from product.inference.specs import MINILM

TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome and everyone should see it at least once this year.",
    "Queues in PostgreSQL hand each job to exactly one worker.",
]


def load(dtype: torch.dtype) -> SentenceEmbeddingModel:
    model = SentenceEmbeddingModel(spec=MINILM, device=torch.device("cpu"), dtype=dtype)
    model.load()
    return model


@pytest.fixture(scope="module")
def full_precision():
    return load(torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_embeddings_match_full_precision(full_precision, dtype):
    half = load(dtype)
    batch = full_precision.prepare(TEXTS)

    reference = torch.tensor(full_precision.run_batch(batch))
    reduced = torch.tensor(half.run_batch(batch))

    cosine = (reference * reduced).sum(dim=1)
    assert reduced.dtype == torch.float32  # Stored results are float32 either way.
    assert cosine.min().item() > 0.999, cosine


def test_synthetic_inputs_have_the_exact_length_asked_for(full_precision):
    for tokens in (2, 17, 256):
        assert len(full_precision.synthetic_input(tokens)) == tokens


def test_a_batch_gives_each_input_what_it_gets_alone(full_precision):
    batch = full_precision.prepare(TEXTS)
    together = torch.tensor(full_precision.run_batch(batch))
    alone = torch.tensor([full_precision.run_batch([ids])[0] for ids in batch])
    assert torch.allclose(together, alone, atol=1e-5)
