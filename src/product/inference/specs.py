"""The light half of every model: what the web needs to accept work and show results.

A model is one folder of a models package (``inference_models/<model>/``, found by
``product.inference.registry``): ``spec.py`` holds its ``SPEC``, an instance of a ``ModelSpec``
subclass, and ``runner.py`` its heavy half (loading weights, running a batch), named here only
by import path, so the web never imports torch. The spec says how input is parsed and limited,
the form's fields and hint, how inputs and results are shown (``inputs.html`` and
``result.html`` beside it) and its result's JSON schema. docs/adding-a-model.md walks through one.

This module holds what specs share: the base class and the checks of one text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django import forms

# Half of a UTF-16 pair on its own: JSON can escape one ("\ud800"), but it is not a character,
# and PostgreSQL refuses to store it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InputError(ValueError):
    """The submitted input is not acceptable; the message says why, for the user."""


def check_text(text: Any, where: str, *, max_chars: int) -> str:
    """``text`` if it is a non-empty string PostgreSQL can store, of at most ``max_chars``
    characters; else InputError naming ``where`` it is (e.g. ``input[3]``)."""
    if not isinstance(text, str):
        raise InputError(f"{where} must be a string, not {type(text).__name__}.")
    if not text.strip():
        raise InputError(f"{where} is empty.")
    if len(text) > max_chars:
        raise InputError(f"{where} has {len(text)} characters; at most {max_chars} are allowed.")
    if "\x00" in text:
        raise InputError(f"{where} contains a NUL character.")
    if _LONE_SURROGATE.search(text):
        raise InputError(f"{where} contains a lone UTF-16 surrogate, which is not text.")
    return text


def check_texts(raw: Any, where: str, *, max_texts: int, max_chars: int, model: str) -> list[str]:
    """One text or a list of 1 to ``max_texts`` texts (each as ``check_text``), as a list."""
    if isinstance(raw, str):
        return [check_text(raw, where, max_chars=max_chars)]
    if not isinstance(raw, list):
        raise InputError(f"{where} must be a string or a list of strings.")
    if not raw:
        raise InputError(f"{where} must contain at least one text.")
    if len(raw) > max_texts:
        raise InputError(f"{where} has {len(raw)} texts; {model} accepts at most {max_texts}.")
    return [check_text(text, f"{where}[{index}]", max_chars=max_chars) for index, text in enumerate(raw)]


def text_schema(max_chars: int) -> dict:
    """JSON Schema of one text as ``check_text`` takes it."""
    return {"type": "string", "minLength": 1, "maxLength": max_chars}


def texts_schema(*, max_texts: int, max_chars: int) -> dict:
    """JSON Schema of one text or a list of them, as ``check_texts`` takes them."""
    text = text_schema(max_chars)
    return {"oneOf": [text, {"type": "array", "items": text, "minItems": 1, "maxItems": max_texts}]}


def text_area(label: str, hint: str, placeholder: str = "One text per line") -> forms.CharField:
    """A form's text area of inputs, one a line (``hint``: what the form says of it)."""
    return forms.CharField(
        label=label, strip=False, help_text=hint,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": placeholder}),
    )


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def plain_inputs(inputs: list) -> list[str]:
    """Each input as shown when its model has no way of its own: itself, or JSON if not text."""
    return [item if isinstance(item, str) else _json(item) for item in inputs]


def lines(text: str) -> list[str]:
    """The non-blank lines of a form's text area, each one input."""
    return [line for line in text.splitlines() if line.strip()]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What the web knows of one model. Subclasses implement the input, form and display
    methods; the shared code (API, pages, OpenAPI, runner) calls only these."""

    name: str
    title: str
    description: str
    #: "module.path:ClassName" of the runner-side implementation (a ``gpu_runner.models.RunnerModel``).
    implementation: str
    #: The folder of its ``inputs.html`` and ``result.html`` (None: the plain shared ones).
    templates: Path | None = None
    #: What its inputs are called on the pages: "texts", "pairs".
    inputs_noun: str = "texts"
    #: Whether its result has vectors, stored as pgvector rows (and offered as a .npy download).
    returns_embeddings: bool = False
    #: The shorter sizes its embeddings may be asked for (OpenAI's ``dimensions``: the first
    #: numbers of each vector, renormalised). Only a model trained for it (Matryoshka) lists any.
    embedding_dimensions: tuple[int, ...] = ()

    @property
    def queue(self) -> str:
        """Procrastinate queue for this model's jobs: a runner listens to the models it hosts."""
        return f"model.{self.name}"

    # --- Input -------------------------------------------------------------------------------

    def parse_input(self, raw: Any) -> list:
        """Validate the request's ``input``; return its list of inputs (each stored as JSON and
        run on its own, so batched with others), or raise InputError saying what is wrong."""
        raise NotImplementedError

    def input_schema(self) -> dict:
        """JSON Schema of ``input`` for the OpenAPI document; in step with ``parse_input``."""
        raise NotImplementedError

    def example_input(self) -> Any:
        """A small valid ``input``: the tests run every model on it, the docs show it."""
        raise NotImplementedError

    def facts(self) -> dict:
        """Its limits and the like, for ``GET /api/v1/models``."""
        return {}

    # --- The form on the requests page ------------------------------------------------------

    def form_fields(self) -> dict[str, forms.Field]:
        """The form's fields for this model's input (their help text is the hint)."""
        return {"text": text_area("Texts", "One text per line; each line becomes one input.")}

    def form_input(self, cleaned_data: dict) -> Any:
        """The ``input`` the form's cleaned fields stand for (``parse_input`` then checks it)."""
        return lines(cleaned_data["text"])

    # --- Showing a request -------------------------------------------------------------------

    @property
    def inputs_template(self) -> str:
        return f"models/{self.name}/inputs.html" if self.templates else "inference/_model_inputs.html"

    @property
    def result_template(self) -> str:
        return f"models/{self.name}/result.html" if self.templates else "inference/_model_result.html"

    def present_inputs(self, inputs: list) -> dict:
        """What ``inputs.html`` shows as ``shown_inputs`` (here: each input, JSON if not text)."""
        return {"inputs": plain_inputs(inputs)}

    def present_result(self, inputs: list, output: dict, embeddings: Any) -> dict:
        """What ``result.html`` shows as ``result`` (here: the output as JSON). ``embeddings``
        is the stored (n, dim) float32 array when the model returns them (else None)."""
        return {"output_json": _json(output, indent=2)}

    # --- Output ------------------------------------------------------------------------------

    def result_schema(self) -> dict:
        """JSON Schema of its result's properties beyond ``id`` and ``model``."""
        return {}
