import numpy as np
import pytest

from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.inference.registry import get_spec
from product.inference.specs import InputError


def test_one_text_becomes_a_list_of_one():
    assert MINILM.parse_input("hello") == ["hello"]


def test_a_list_of_texts_is_kept_in_order():
    assert MINILM.parse_input(["b", "a"]) == ["b", "a"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "input is empty"),
        ("   ", "input is empty"),
        ([], "at least one text"),
        (["ok", ""], "input[1] is empty"),
        (["ok", 3], "input[1] must be a string, not int"),
        (42, "must be a string or a list of strings"),
        ({"text": "x"}, "must be a string or a list of strings"),
        (None, "must be a string or a list of strings"),
        ("x" * (MINILM.max_chars + 1), f"at most {MINILM.max_chars}"),
        (["x"] * (MINILM.max_texts + 1), f"accepts at most {MINILM.max_texts}"),
        ("a\x00b", "NUL character"),
    ],
)
def test_invalid_input_is_refused_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MINILM.parse_input(raw)


def test_unknown_model_error_lists_known_models():
    with pytest.raises(InputError, match="known models: all-minilm-l6-v2"):
        get_spec("gpt-17")


def test_preview_shows_norms_and_similarities():
    embeddings = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    preview = MINILM.preview(["a", "b"], {"dim": 2}, embeddings)
    assert [row["norm"] for row in preview["rows"]] == [1.0, 1.0]
    assert preview["similarity"] == [[1.0, 0.6], [0.6, 1.0]]
    assert [row["head"] for row in preview["rows"]] == [[1.0, 0.0], [0.6, 0.8]]
