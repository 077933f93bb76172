"""Every registered model, found by the registry rather than listed here, on its real weights:
its example input is accepted by the API, run by the real runner, served as JSON in the shape
its result schema gives, and shown on the request page by its own fragments; the requests page
offers its form with its own fields and hint."""

import pytest
from django.utils.html import escape

from gpu_runner import runtime
from product.inference.models import InferenceRequest, RequestStatus
from product.inference.registry import REGISTRY
from tests.support.worker import drain

pytestmark = pytest.mark.usefixtures("clean_queue")

MODELS = list(REGISTRY)


@pytest.fixture
def every_model(settings, monkeypatch):
    """A runtime hosting every registered model, with a small batch budget (fast warm-up)."""
    settings.GPU_RUNNER_MODELS = []
    settings.GPU_RUNNER_MAX_BATCH_SIZE = 8
    settings.GPU_RUNNER_MAX_BATCH_TOKENS = 1024
    monkeypatch.setattr(runtime, "_current", None)
    return runtime.load_runtime()


@pytest.mark.parametrize("model", MODELS)
def test_each_model_runs_its_example_and_its_page_shows_the_result(model, client, alice, auth, every_model):
    spec = REGISTRY[model]
    created = client.post(
        "/api/v1/requests", {"model": model, "input": spec.example_input()},
        content_type="application/json", **auth,
    )
    assert created.status_code == 201, created.content

    drain([spec.queue])

    request = InferenceRequest.objects.get(pk=created.json()["id"])
    assert request.status == RequestStatus.SUCCEEDED, request.error
    result = client.get(created.json()["url"] + "/result", **auth).json()
    assert set(result) == {"id", "model", *spec.result_schema()}
    assert result["model"] == model

    client.force_login(alice)
    page = client.get(f"/requests/{request.pk}/")
    html = page.content.decode()
    used = {template.name for template in page.templates}
    assert {spec.inputs_template, spec.result_template} <= used
    assert 'id="result-preview"' in html
    assert f"<dt>{spec.inputs_noun.capitalize()}</dt>" in html
    for text in _texts(request.inputs):
        assert text in html
    assert "[&#x27;" not in html and "{&#x27;" not in html  # No input shown as a Python list.
    assert ('result.npy"' in html) == spec.returns_embeddings


def _texts(inputs) -> list[str]:
    """The strings inside a request's inputs (texts, pairs' texts, labels)."""
    if isinstance(inputs, str):
        return [inputs]
    if isinstance(inputs, dict):
        return [text for value in inputs.values() for text in _texts(value)]
    if isinstance(inputs, list):
        return [text for value in inputs for text in _texts(value)]
    return []


def test_the_openapi_result_is_one_of_every_model_s_result_schema(client):
    document = client.get("/api/openapi.json").json()
    variants = document["components"]["schemas"]["Result"]["oneOf"]
    assert [v["properties"]["model"] for v in variants] == [{"const": m} for m in MODELS]
    for variant, spec in zip(variants, REGISTRY.values()):
        assert variant["properties"] == {"id": {"type": "integer"}, "model": {"const": spec.name}, **spec.result_schema()}


@pytest.mark.parametrize("model", MODELS)
def test_the_requests_page_offers_each_model_s_own_form(model, client, alice):
    spec = REGISTRY[model]
    client.force_login(alice)

    html = client.get(f"/requests/?model={model}").content.decode()

    assert f'<input type="hidden" name="model" value="{model}"' in html
    for name, field in spec.form_fields().items():
        assert f'name="{name}"' in html and escape(field.help_text) in html
    assert escape(spec.description) in html
