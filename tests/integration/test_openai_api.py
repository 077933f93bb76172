"""The OpenAI-compatible API's refusals, on real PostgreSQL: each error has OpenAI's shape
(``{"error": {"message", "type", "param", "code"}}``) with the right status, and creates no
request and no job. (Answers that wait for a runner: tests/e2e/test_openai_inline.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from inference_models.sentence_embedding.spec import SPEC as MINILM
from inference_models.sentence_similarity.spec import SPEC as SIMILARITY
from product.inference.models import InferenceRequest
from product.inference.openai_api import shortened
from product.inference.registry import REGISTRY

pytestmark = pytest.mark.django_db


def _post(client, auth: str | None, body, **headers):
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = auth
    return client.post("/v1/embeddings", body, content_type="application/json", **headers)


def _error(response, status: int, *, code: str | None = None, param: str | None = None) -> dict:
    """The OpenAI-shaped error of ``response``, checked; nothing was created."""
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert error["param"] == param
    assert InferenceRequest.objects.count() == 0 and ProcrastinateJob.objects.count() == 0
    return error


def test_a_missing_or_bad_token_is_a_401_invalid_api_key(client):
    for auth in (None, "Bearer gq_not-a-token", "Basic abc"):
        error = _error(_post(client, auth, {"model": MINILM.name, "input": "hi"}), 401, code="invalid_api_key")
        assert error["type"] == "authentication_error"


def test_an_unknown_model_is_a_404_model_not_found_naming_the_embedding_models(client, auth):
    error = _error(
        _post(client, auth["HTTP_AUTHORIZATION"], {"model": "text-embedding-3-small", "input": "hi"}),
        404, code="model_not_found", param="model",
    )
    assert "text-embedding-3-small" in error["message"] and MINILM.name in error["message"]
    assert error["type"] == "invalid_request_error"


def test_a_model_that_returns_no_embeddings_is_a_400(client, auth):
    error = _error(
        _post(client, auth["HTTP_AUTHORIZATION"], {"model": SIMILARITY.name, "input": "hi"}),
        400, code="model_not_supported", param="model",
    )
    assert "does not return embeddings" in error["message"]


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"model": MINILM.name, "input": ""}, "input", "empty"),
        ({"model": MINILM.name, "input": []}, "input", "at least one"),
        ({"model": MINILM.name, "input": ["fine", "  "]}, "input", "input[1] is empty"),
        ({"model": MINILM.name, "input": [[1, 2, 3]]}, "input", "token ids"),
        ({"model": MINILM.name, "input": [101, 2023]}, "input", "token ids"),
        ({"model": MINILM.name, "input": ["x"] * (MINILM.max_texts + 1)}, "input", "at most"),
        ({"model": MINILM.name}, "input", "input is required"),
        ({"input": "hi"}, "model", "model is required"),
        ({"model": 7, "input": "hi"}, "model", "must be a string"),
        ({"model": MINILM.name, "input": "hi", "encoding_format": "int8"}, "encoding_format", "float, base64"),
        ({"model": MINILM.name, "input": "hi", "user": 12}, "user", "user must be a string"),
        ({"model": MINILM.name, "input": "hi", "temperature": 0}, "temperature", "unrecognized"),
    ],
)
def test_invalid_input_is_a_400_naming_the_parameter(client, auth, body, param, says):
    error = _error(_post(client, auth["HTTP_AUTHORIZATION"], body), 400, param=param)
    assert says in error["message"]


def test_a_body_that_is_not_json_is_refused_in_openais_shape(client, auth):
    response = client.post(
        "/v1/embeddings", "{not json", content_type="application/json", **auth
    )
    _error(response, 400, code="malformed_json")


def test_dimensions_are_refused_for_a_model_that_does_not_support_them(client, auth):
    error = _error(
        _post(client, auth["HTTP_AUTHORIZATION"], {"model": MINILM.name, "input": "hi", "dimensions": 128}),
        400, param="dimensions",
    )
    assert "does not support dimensions" in error["message"]


def test_dimensions_a_model_supports_are_checked_against_its_sizes(client, auth, monkeypatch):
    from dataclasses import replace

    monkeypatch.setitem(REGISTRY, MINILM.name, replace(MINILM, embedding_dimensions=(128, 256)))
    error = _error(
        _post(client, auth["HTTP_AUTHORIZATION"], {"model": MINILM.name, "input": "hi", "dimensions": 100}),
        400, param="dimensions",
    )
    assert "128, 256" in error["message"]


def test_a_shortened_embedding_is_its_head_renormalised():
    vectors = np.array([[3.0, 4.0, 12.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    short = shortened(vectors, 2)
    np.testing.assert_allclose(short, [[0.6, 0.8], [0.0, 0.0]])
    assert short.dtype == np.float32


def test_a_submit_over_a_limit_is_a_429_with_retry_after(client, make_user, token_for, settings):
    from product.inference import services

    settings.INFERENCE_SUBMIT_BURST = 1
    bob = make_user("bob")
    services.request_submit(user=bob, model=MINILM.name, raw_input="the one submit of the burst")
    InferenceRequest.objects.all().delete()
    ProcrastinateJob.objects.all().delete()
    response = _post(client, token_for(bob), {"model": MINILM.name, "input": "hi"})
    error = _error(response, 429, code="rate_limited")
    assert error["type"] == "rate_limit_error"
    assert int(response["Retry-After"]) >= 1


def test_a_request_too_large_for_the_queued_texts_limit_is_a_400(client, make_user, token_for, settings):
    settings.INFERENCE_MAX_QUEUED_TEXTS = 2
    response = _post(client, token_for(make_user("bob")), {"model": MINILM.name, "input": ["a", "b", "c"]})
    _error(response, 400, code="quota_exceeded")


def test_a_reused_idempotency_key_with_another_body_is_a_422(client, auth, alice):
    from product.inference import services

    services.request_submit_idempotent(
        user=alice, key="k-1", body_digest="another body", model=MINILM.name, raw_input="hi",
    )
    before = InferenceRequest.objects.count()
    response = _post(
        client, auth["HTTP_AUTHORIZATION"], {"model": MINILM.name, "input": "hi"}, HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert InferenceRequest.objects.count() == before


def test_other_methods_and_paths_under_v1_answer_in_openais_shape(client, auth):
    response = client.get("/v1/embeddings", **auth)
    assert response.status_code == 405 and response["Allow"] == "POST"
    _error(response, 405, code="method_not_allowed")
    response = client.post("/v1/chat/completions", {}, content_type="application/json", **auth)
    _error(response, 404, code="not_found")


def test_models_are_listed_in_openais_shape(client, auth):
    response = client.get("/v1/models", **auth)
    assert response.status_code == 200
    listed = response.json()
    assert listed["object"] == "list"
    assert [model["id"] for model in listed["data"]] == list(REGISTRY)
    assert all(
        set(model) == {"id", "object", "created", "owned_by"} and model["object"] == "model"
        for model in listed["data"]
    )
    one = client.get(f"/v1/models/{MINILM.name}", **auth)
    assert one.status_code == 200 and one.json()["id"] == MINILM.name
    _error(client.get("/v1/models/gpt-4", **auth), 404, code="model_not_found", param="model")
    _error(client.get("/v1/models"), 401, code="invalid_api_key")
