"""The real all-MiniLM-L6-v2 runner model on small inputs: half precision really computes in
half precision and keeps the embeddings (pooling and normalisation stay float32), warm-up builds
inputs of exact lengths, inputs are tokenised as the model card's tokenizer does, and a
request's result packs into one float32 array."""

import numpy as np
import pytest
import torch

from inference_models.sentence_embedding.runner import SentenceEmbeddingModel
from inference_models.sentence_embedding.spec import SPEC as MINILM

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
    encoded = []  # The dtype the encoder's forward pass really computed in.
    half.model.register_forward_hook(
        lambda module, args, output: encoded.append(output.last_hidden_state.dtype)
    )
    batch = full_precision.prepare(TEXTS)

    reference = full_precision.run_batch(batch)
    reduced = half.run_batch(batch)

    assert {parameter.dtype for parameter in half.model.parameters()} == {dtype}
    assert encoded == [dtype]
    assert not np.array_equal(reduced, reference)  # Another computation, not the same one.
    assert reduced.dtype == np.float32  # Pooled and stored in float32 either way.
    cosine = (reference * reduced).sum(axis=1)
    assert cosine.min() > 0.999, cosine
    np.testing.assert_allclose(reduced, reference, atol=0.01)


def test_synthetic_inputs_have_the_exact_length_asked_for(full_precision):
    for tokens in (2, 17, 256):
        assert len(full_precision.synthetic_input(tokens)) == tokens


def test_a_batch_gives_each_input_what_it_gets_alone(full_precision):
    batch = full_precision.prepare(TEXTS)
    together = full_precision.run_batch(batch)
    alone = np.stack([full_precision.run_batch([ids])[0] for ids in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_request_is_packed_as_its_dimension_and_one_float32_array(full_precision):
    outputs = list(full_precision.run_batch(full_precision.prepare(TEXTS)))  # One row per input.

    packed = full_precision.pack(outputs)

    assert packed.output == {"dim": MINILM.output_dim}
    assert packed.embeddings.dtype == np.float32
    assert packed.embeddings.shape == (len(TEXTS), MINILM.output_dim)
    np.testing.assert_array_equal(packed.embeddings, np.stack(outputs))
    np.testing.assert_allclose(np.linalg.norm(packed.embeddings, axis=1), 1.0, atol=1e-5)


def test_inputs_are_tokenised_as_the_model_card_s_tokenizer_does_truncation_included(full_precision):
    texts = TEXTS + ["word " * 400, "Ünïcödé, emoji 😀 and\ttabs."]
    expected = full_precision.tokenizer(
        texts, truncation=True, max_length=full_precision.max_input_tokens
    )["input_ids"]

    prepared = full_precision.prepare(texts)

    assert prepared == expected
    assert len(prepared[len(TEXTS)]) == full_precision.max_input_tokens
