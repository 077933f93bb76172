"""Sentence similarity on the real all-MiniLM-L6-v2 weights: a paraphrase scores above an
unrelated pair, a score is the cosine similarity of the two texts' embeddings, a batch gives
each pair what it gets alone; and its input, from the API or the form, is checked with messages
naming the problem."""

import numpy as np
import pytest
import torch

from inference_models.sentence_embedding.runner import SentenceEmbeddingModel
from inference_models.sentence_embedding.spec import SPEC as EMBEDDINGS
from inference_models.sentence_similarity.runner import SentenceSimilarityModel
from inference_models.sentence_similarity.spec import SPEC
from product.inference.specs import InputError

PAIRS = [
    ["A man is eating food.", "A man is eating a piece of bread."],
    ["A man is eating food.", "The stock market closed lower on Friday."],
    ["Queues in PostgreSQL hand each job to one worker.", "PostgreSQL can serve as a job queue."],
]


@pytest.fixture(scope="module")
def model():
    model = SentenceSimilarityModel(spec=SPEC, device=torch.device("cpu"), dtype=torch.float32)
    model.load()
    return model


def test_a_paraphrase_scores_above_an_unrelated_pair(model):
    scores = model.pack(list(model.run_batch(model.prepare(PAIRS)))).output["scores"]
    assert len(scores) == 3 and all(-1 <= score <= 1 for score in scores)
    assert scores[0] > 0.5 > 0.2 > scores[1]
    assert scores[2] > scores[1]


def test_a_score_is_the_cosine_similarity_of_the_two_embeddings(model):
    embeddings = SentenceEmbeddingModel(spec=EMBEDDINGS, device=torch.device("cpu"), dtype=torch.float32)
    embeddings.load()
    first, second = embeddings.run_batch(embeddings.prepare(PAIRS[0]))
    [score] = model.run_batch(model.prepare(PAIRS[:1]))
    assert score == pytest.approx(float(first @ second), abs=1e-5)


def test_a_batch_gives_each_pair_what_it_gets_alone(model):
    together = model.run_batch(model.prepare(PAIRS))
    alone = [model.run_batch(model.prepare([pair]))[0] for pair in PAIRS]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_pair_costs_twice_its_longer_text_and_warm_up_inputs_have_the_size_asked_for(model):
    [prepared] = model.prepare([["short", "a much longer text than the first one is"]])
    assert model.count_tokens(prepared) == 2 * len(prepared[1])
    assert model.count_tokens(model.synthetic_input(64)) == 64
    model.warm_up(max_batch_size=4, max_batch_tokens=model.max_input_tokens)


def test_pairs_are_kept_in_order():
    assert SPEC.parse_input(PAIRS) == PAIRS


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("one text", "must be a list of pairs"),
        ([], "at least one pair"),
        ([["a", "b"]] * (SPEC.max_pairs + 1), f"at most {SPEC.max_pairs}"),
        ([["a"]], r"input\[0\] must be a pair"),
        ([["a", "b", "c"]], r"input\[0\] must be a pair"),
        ([["a", "b"], "ab"], r"input\[1\] must be a pair"),
        ([["a", " "]], r"input\[0\]\[1\] is empty"),
        ([["a", 3]], r"input\[0\]\[1\] must be a string"),
        ([["a\x00", "b"]], "NUL character"),
        ([["x" * (SPEC.max_chars + 1), "b"]], f"at most {SPEC.max_chars}"),
    ],
)
def test_invalid_input_is_refused_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(InputError, match=message):
        SPEC.parse_input(raw)


def test_the_form_takes_one_pair_a_line_split_by_a_bar():
    assert SPEC.form_input({"text": "a cat | a kitten\n\n  dogs bark|cats meow \n"}) == [
        ["a cat", "a kitten"], ["dogs bark", "cats meow"],
    ]
    with pytest.raises(InputError, match="line 2 must hold two texts split by one |"):
        SPEC.form_input({"text": "a | b\nno bar here"})
    with pytest.raises(InputError, match="line 1"):
        SPEC.form_input({"text": "a | b | c"})
