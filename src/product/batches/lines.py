"""Reading a batch file line by line: OpenAI batch-input lines, or one plain text per line.

A line whose first character that is not white space is ``{`` is a JSON line, in OpenAI's
batch-input format (``{"custom_id", "method": "POST", "url": "/v1/embeddings", "body":
{"input", "model"}}``; only ``body.input`` is required); any other line that is not blank is
one text, as it is (its line break removed), with the ``custom_id`` ``line-<number>``. Blank
lines are skipped. A text that begins with ``{`` is sent as a JSON line. Lines are numbered
from 1, blank ones included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from product.inference.specs import InputError, ModelSpec, check_text

EMBEDDINGS_URL = "/v1/embeddings"
LINE_FIELDS = {"custom_id", "method", "url", "body"}
# Fields of OpenAI's embeddings body that change nothing here (the output is always floats).
BODY_FIELDS = {"input", "model", "encoding_format", "user"}
MAX_CUSTOM_ID = 255


class BadLine(Exception):
    """A line that cannot be read; the message says why, for the user."""


@dataclass(frozen=True)
class Line:
    number: int
    custom_id: str
    texts: list[str]
    model: str | None  # The model the line names, if any.


def line_model(raw: bytes) -> str | None:
    """The model a JSON line's body names, if the line is one and names one (else None)."""
    try:
        data = orjson.loads(raw)
        model = data["body"]["model"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return model if isinstance(model, str) else None


def read_line(number: int, raw: bytes, *, spec: ModelSpec) -> Line | None:
    """The line's texts checked as ``spec`` checks a request's input; None for a blank line.
    Raises BadLine."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadLine(f"not UTF-8 text ({error.reason} at byte {error.start}).") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        return None
    if text.lstrip().startswith("{"):
        return _json_line(number, text, spec=spec)
    try:
        return Line(number, f"line-{number}", [check_text(text, "the text", max_chars=spec.max_chars)], None)
    except InputError as error:
        raise BadLine(str(error)) from None


def _json_line(number: int, text: str, *, spec: ModelSpec) -> Line:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise BadLine(f"not valid JSON ({error}).") from None
    if not isinstance(data, dict):
        raise BadLine("a JSON line must be an object.")
    _no_unknown(data, LINE_FIELDS, "")
    if data.get("method", "POST") != "POST":
        raise BadLine(f"method must be POST (got {data['method']!r}).")
    if data.get("url", EMBEDDINGS_URL) != EMBEDDINGS_URL:
        raise BadLine(f"url must be {EMBEDDINGS_URL} (got {data['url']!r}).")
    custom_id = data.get("custom_id", f"line-{number}")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
        raise BadLine(f"custom_id must be a string of 1 to {MAX_CUSTOM_ID} characters.")
    body = data.get("body")
    if not isinstance(body, dict) or "input" not in body:
        raise BadLine('the line needs a "body" object with "input" (a text or a list of texts).')
    _no_unknown(body, BODY_FIELDS, "body.")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadLine("body.model must be a string.")
    try:
        texts = spec.parse_input(body["input"])
    except InputError as error:
        raise BadLine(str(error)) from None
    return Line(number, custom_id, texts, model)


def _no_unknown(data: dict[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadLine(f"unknown field(s): {', '.join(prefix + name for name in unknown)}.")
