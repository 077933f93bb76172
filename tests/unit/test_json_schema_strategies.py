"""The fuzz tests' generator of values from JSON Schemas: what it draws keeps each keyword, and
a keyword it does not know stops the test naming it (rather than fuzzing a schema by half)."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from product.inference.registry import REGISTRY
from tests.support.json_schema import from_schema

LABELS = {
    "type": "array", "minItems": 2, "maxItems": 4, "uniqueItems": True,
    "items": {"type": "string", "minLength": 1, "maxLength": 20, "pattern": r"\S"},
}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_drawn_arrays_keep_their_bounds_uniqueness_and_pattern(data):
    labels = data.draw(from_schema(LABELS))
    assert 2 <= len(labels) <= 4 and len(set(labels)) == len(labels)
    assert all(1 <= len(label) <= 20 and re.search(r"\S", label) for label in labels)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_of_prefix_items_contains_and_exclusive_bounds_are_kept(data):
    schema = {
        "anyOf": [
            {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 5},
            {"type": "array", "prefixItems": [{"const": "head"}], "contains": {"const": 7},
             "maxItems": 3, "items": {"type": "integer"}},
        ]
    }
    value = data.draw(from_schema(schema))
    if isinstance(value, int):
        assert 0 < value < 5
    else:
        assert value[0] == "head" and 7 in value and len(value) <= 3


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_objects_have_their_required_properties_and_no_others_when_closed(data):
    schema = {"type": "object", "required": ["a"], "additionalProperties": False,
              "properties": {"a": {"enum": [1, 2]}, "b": {"type": ["null", "boolean"]}}}
    value = data.draw(from_schema(schema))
    assert value["a"] in (1, 2) and set(value) <= {"a", "b"}


def test_a_keyword_it_does_not_know_is_named():
    with pytest.raises(NotImplementedError, match="dependentSchemas"):
        from_schema({"type": "object", "dependentSchemas": {}})


@pytest.mark.parametrize("model", list(REGISTRY))
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_every_registered_model_s_input_schema_can_be_drawn_from(model, data):
    data.draw(from_schema(REGISTRY[model].input_schema()))
