"""Zero-shot classification on the real all-MiniLM-L6-v2 weights: clear texts get the right label
first, every label comes back once with its score (the cosine similarity of the text and the
label's sentence), a batch of requests with different labels gives each what it gets alone; and
its input, from the API or the form, is checked with messages naming the problem."""

import numpy as np
import pytest
import torch

from inference_models.zero_shot_classification.runner import ZeroShotClassificationModel
from inference_models.zero_shot_classification.spec import SPEC
from product.inference.specs import InputError

LABELS = ["sports", "finance", "cooking", "technology"]
TEXTS = {
    "Shares fell after the bank raised interest rates.": "finance",
    "Whisk the eggs, then fold in the flour and sugar.": "cooking",
    "The new phone has a faster chip and a better camera.": "technology",
    "The goalkeeper saved a penalty in the last minute of the match.": "sports",
}


@pytest.fixture(scope="module")
def model():
    model = ZeroShotClassificationModel(spec=SPEC, device=torch.device("cpu"), dtype=torch.float32)
    model.load()
    return model


def classify(model, raw):
    return model.pack(model.run_batch(model.prepare(SPEC.parse_input(raw)))).output["results"]


def test_clear_texts_get_the_right_label_first(model):
    results = classify(model, {"texts": list(TEXTS), "labels": LABELS})
    assert [result["labels"][0] for result in results] == list(TEXTS.values())


def test_every_label_comes_back_once_best_first_with_its_cosine_score(model):
    [result] = classify(model, {"texts": "Shares fell after the bank raised rates.", "labels": LABELS})
    assert sorted(result["labels"]) == sorted(LABELS)
    assert result["scores"] == sorted(result["scores"], reverse=True)
    text = model.encoder.embed(model.token_ids.of(["Shares fell after the bank raised rates."]))[0]
    label = model.encoder.embed(model.label_ids.of(["This text is about finance."]))[0]
    assert result["scores"][result["labels"].index("finance")] == pytest.approx(float(text @ label), abs=1e-5)


def test_a_batch_of_requests_with_different_labels_gives_each_what_it_gets_alone(model):
    first = SPEC.parse_input({"texts": list(TEXTS)[:2], "labels": LABELS})
    second = SPEC.parse_input({"texts": list(TEXTS)[2:], "labels": ["gadgets", "football"]})
    together = model.run_batch(model.prepare(first + second))
    alone = model.run_batch(model.prepare(first)) + model.run_batch(model.prepare(second))
    assert [o["labels"] for o in together] == [o["labels"] for o in alone]
    np.testing.assert_allclose([o["scores"] for o in together[:2]], [o["scores"] for o in alone[:2]], atol=1e-5)
    np.testing.assert_allclose([o["scores"] for o in together[2:]], [o["scores"] for o in alone[2:]], atol=1e-5)


def test_an_input_s_cost_bounds_both_passes_and_warm_up_fits_the_budget(model):
    [prepared] = model.prepare(SPEC.parse_input({"texts": "a short text", "labels": ["a", "much longer label"]}))
    longest_label = max(len(ids) for ids in prepared.label_ids)
    assert model.count_tokens(prepared) == len(prepared.text) + 2 * longest_label
    assert model.count_tokens(model.synthetic_input(100)) == 100
    model.warm_up(max_batch_size=4, max_batch_tokens=model.max_input_tokens)


def test_each_text_is_one_input_carrying_the_request_s_labels():
    assert SPEC.parse_input({"texts": ["a", "b"], "labels": ["x", "y"]}) == [
        {"text": "a", "labels": ["x", "y"]}, {"text": "b", "labels": ["x", "y"]},
    ]
    assert SPEC.parse_input({"texts": "one", "labels": ["x", "y"]}) == [{"text": "one", "labels": ["x", "y"]}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["a text"], 'an object with "texts" and "labels"'),
        ({"texts": "a"}, 'an object with "texts" and "labels"'),
        ({"texts": "a", "labels": ["x", "y"], "extra": 1}, "and nothing else"),
        ({"texts": [], "labels": ["x", "y"]}, "input.texts must contain at least one text"),
        ({"texts": ["a", ""], "labels": ["x", "y"]}, r"input.texts\[1\] is empty"),
        ({"texts": ["a"] * (SPEC.max_texts + 1), "labels": ["x", "y"]}, f"at most {SPEC.max_texts}"),
        ({"texts": "a", "labels": ["x"]}, "at least two labels"),
        ({"texts": "a", "labels": "x, y"}, "at least two labels"),
        ({"texts": "a", "labels": [str(n) for n in range(SPEC.max_labels + 1)]}, f"at most {SPEC.max_labels}"),
        ({"texts": "a", "labels": ["x", " "]}, r"input.labels\[1\] is empty"),
        ({"texts": "a", "labels": ["x", "x"]}, "the same label twice"),
        ({"texts": "a", "labels": ["x", "y" * (SPEC.max_label_chars + 1)]}, f"at most {SPEC.max_label_chars}"),
    ],
)
def test_invalid_input_is_refused_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(InputError, match=message):
        SPEC.parse_input(raw)


def test_the_form_takes_texts_a_line_and_labels_split_by_commas():
    assert SPEC.form_input({"text": "one\n\ntwo\n", "labels": " sports, finance ,, cooking"}) == {
        "texts": ["one", "two"], "labels": ["sports", "finance", "cooking"],
    }
