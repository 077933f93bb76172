"""Hypothesis strategies of values valid by a JSON Schema, for fuzzing the API from its own
OpenAPI 3.1 document (JSON Schema 2020-12).

Written here rather than taken from hypothesis-jsonschema, which relies on Hypothesis internals
that change. It covers the validation vocabulary a model's input schema is likely to use:
``type`` (one or several), ``const``, ``enum``, ``oneOf``/``anyOf`` (a value of one option),
``allOf`` (its schemas merged), strings (``minLength``, ``maxLength``, ``pattern``), numbers
(``minimum``, ``maximum``, the exclusive bounds, ``multipleOf``), arrays (``items``,
``prefixItems``, ``minItems``, ``maxItems``, ``uniqueItems``, ``contains``) and objects
(``properties``, ``required``, ``additionalProperties``, ``minProperties``, ``maxProperties``),
and it ignores annotations (``title``, ``description``, ``format`` …). A keyword it does not
know fails loudly, naming it, so a schema that grows is never fuzzed by half.
"""

from __future__ import annotations

import json
import math
import re

from hypothesis import strategies as st

ANNOTATIONS = {
    "title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
    "writeOnly", "format", "contentEncoding", "contentMediaType", "$schema", "$id",
}
STRING = {"minLength", "maxLength", "pattern"}
NUMBER = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
ARRAY = {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains"}
OBJECT = {"properties", "required", "additionalProperties", "minProperties", "maxProperties"}
KNOWN = ANNOTATIONS | STRING | NUMBER | ARRAY | OBJECT | {
    "type", "const", "enum", "oneOf", "anyOf", "allOf",
}
TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")

# Values of an empty schema ({} or true): any JSON, kept small.
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def from_schema(schema: dict | bool) -> st.SearchStrategy:
    """Values valid by ``schema``."""
    if schema is True or schema == {}:
        return ANY_JSON
    if schema is False:
        raise ValueError("no value is valid by the schema false")
    unknown = set(schema) - KNOWN
    if unknown:
        raise NotImplementedError(f"JSON Schema keywords not fuzzed: {sorted(unknown)}")
    if "allOf" in schema:
        return from_schema(_merged(schema))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for combinator in ("oneOf", "anyOf"):
        if combinator in schema:
            rest = {key: value for key, value in schema.items() if key != combinator}
            return st.one_of([from_schema(_merged({"allOf": [rest, option]})) for option in schema[combinator]])
    kinds = schema.get("type", _implied_types(schema))
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    return st.one_of([_of_type(kind, schema) for kind in kinds])


def _implied_types(schema: dict) -> list[str]:
    """The types a schema without ``type`` allows: those its keywords speak of, else all."""
    implied = [kind for kind, words in (("string", STRING), ("array", ARRAY), ("object", OBJECT))
               if words & set(schema)]
    if NUMBER & set(schema):
        implied.append("number")
    return implied or list(TYPES)


def _merged(schema: dict) -> dict:
    """One schema of ``allOf``'s schemas (and the keywords beside it): keywords that two give
    must agree, except the bounds, where the tighter wins."""
    merged: dict = {}
    parts = [{key: value for key, value in schema.items() if key != "allOf"}, *schema.get("allOf", [])]
    tighter = {"minLength": max, "minItems": max, "minimum": max, "minProperties": max,
               "maxLength": min, "maxItems": min, "maximum": min, "maxProperties": min}
    for part in parts:
        if part.get("allOf"):
            part = _merged(part)
        for key, value in part.items():
            if key in ANNOTATIONS:
                continue
            if key not in merged:
                merged[key] = value
            elif key in tighter:
                merged[key] = tighter[key](merged[key], value)
            elif key == "required":
                merged[key] = sorted(set(merged[key]) | set(value))
            elif key == "properties":
                merged[key] = {**merged[key], **value}
            elif merged[key] != value:
                raise NotImplementedError(f"allOf with two different {key!r}: {merged[key]!r}, {value!r}")
    return merged


def _of_type(kind: str, schema: dict) -> st.SearchStrategy:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind in ("integer", "number"):
        return _numbers(kind, schema)
    if kind == "string":
        return _strings(schema)
    if kind == "array":
        return _arrays(schema)
    if kind == "object":
        return _objects(schema)
    raise NotImplementedError(f"JSON Schema type not fuzzed: {kind!r}")


def _numbers(kind: str, schema: dict) -> st.SearchStrategy:
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    step = schema.get("multipleOf")
    if kind == "integer" or (step is not None and float(step).is_integer()):
        if above is not None:
            low = max(low if low is not None else -math.inf, math.floor(above) + 1)
        if below is not None:
            high = min(high if high is not None else math.inf, math.ceil(below) - 1)
        low = None if low is None or low == -math.inf else math.ceil(low)
        high = None if high is None or high == math.inf else math.floor(high)
        values = st.integers(low, high)
        return values.filter(lambda n: n % int(step) == 0) if step else values
    values = st.floats(
        min_value=low if above is None else above, max_value=high if below is None else below,
        exclude_min=above is not None, exclude_max=below is not None,
        allow_nan=False, allow_infinity=False,
    )
    return values.filter(lambda x: math.isclose(x / step, round(x / step))) if step else values


def _strings(schema: dict) -> st.SearchStrategy:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" not in schema:
        return st.text(min_size=low, max_size=high)
    # A JSON Schema pattern is unanchored: the string holds a match somewhere.
    pattern = re.compile(schema["pattern"])
    matching = st.from_regex(pattern, fullmatch=False)
    return matching.filter(lambda text: low <= len(text) and (high is None or len(text) <= high))


def _arrays(schema: dict) -> st.SearchStrategy:
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    prefix = [from_schema(each) for each in schema.get("prefixItems", [])]
    items = schema.get("items", True)
    rest_low = max(low - len(prefix), 0)
    rest_high = None if high is None else max(high - len(prefix), 0)
    unique = schema.get("uniqueItems", False)
    if items is False:
        rest = st.just([])
    else:
        rest = st.lists(from_schema(items), min_size=rest_low, max_size=rest_high,
                        unique_by=_canonical if unique else None)
    values = st.tuples(*prefix, rest).map(lambda parts: [*parts[:-1], *parts[-1]])
    if "contains" in schema:
        # One item (after the prefix, so also valid by ``items``) is valid by ``contains``.
        wanted = schema["contains"] if items in (True, {}) else {"allOf": [items, schema["contains"]]}
        values = st.tuples(values, from_schema(wanted), st.integers(0, 10**6)).map(
            lambda drawn: _with(drawn[0], drawn[1], drawn[2], len(prefix), high)
        )
    if unique:
        values = values.filter(lambda array: len({_canonical(v) for v in array}) == len(array))
    return values.filter(lambda array: low <= len(array) and (high is None or len(array) <= high))


def _with(array: list, item, where: int, after: int, high: int | None) -> list:
    """``array`` holding ``item`` somewhere after its first ``after`` items (in place of its
    last one, when it is full)."""
    if high is not None and len(array) >= high and len(array) > after:
        array = array[:-1]
    position = after + where % (len(array) - after + 1)
    return [*array[:position], item, *array[position:]]


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def _objects(schema: dict) -> st.SearchStrategy:
    properties = {name: from_schema(sub) for name, sub in schema.get("properties", {}).items()}
    required = set(schema.get("required", ()))
    for name in required - set(properties):
        properties[name] = ANY_JSON
    extra = schema.get("additionalProperties", True)
    values = st.fixed_dictionaries(
        {name: value for name, value in properties.items() if name in required},
        optional={name: value for name, value in properties.items() if name not in required},
    )
    if extra is not False:
        others = st.dictionaries(
            st.text(max_size=8).filter(lambda key: key not in properties), from_schema(extra), max_size=3
        )
        values = st.tuples(values, others).map(lambda parts: {**parts[1], **parts[0]})
    low, high = schema.get("minProperties", 0), schema.get("maxProperties")
    return values.filter(lambda obj: low <= len(obj) and (high is None or len(obj) <= high))
