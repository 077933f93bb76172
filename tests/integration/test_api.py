"""The JSON API: validation, authentication, owner isolation."""

import json
import re

import pytest
from procrastinate.contrib.django.models import ProcrastinateJob

from product.batches import api_urls as batch_api_urls
from product.inference import api_urls, openai_urls, services
from product.inference.models import InferenceRequest
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.inference.registry import REGISTRY

pytestmark = pytest.mark.django_db

URL = "/api/v1/requests"


def post_json(client, body, headers, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **headers)


def test_submit_returns_201_with_the_queued_request(client, auth):
    response = post_json(client, {"model": MINILM.name, "input": ["a", "b"]}, auth)

    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["item_count"] == 2
    assert response["Location"] == f"/api/v1/requests/{body['id']}"
    assert InferenceRequest.objects.filter(pk=body["id"]).exists()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ({"model": MINILM.name, "input": ""}, "application/json", 400, "input is empty"),
        ({"model": MINILM.name, "input": []}, "application/json", 400, "at least one text"),
        ({"model": MINILM.name, "input": ["x"] * 257}, "application/json", 400, "at most 256"),
        ({"model": MINILM.name, "input": "x" * 4001}, "application/json", 400, "at most 4000"),
        ({"model": "nope", "input": "x"}, "application/json", 400, "unknown model 'nope'"),
        ({"model": 7, "input": "x"}, "application/json", 400, "model must be a string"),
        ({"model": MINILM.name, "input": 7}, "application/json", 400, "must be a string or a list"),
        ({"model": MINILM.name, "input": ["x", None]}, "application/json", 400, "input[1] must be a string"),
        ({"input": "x"}, "application/json", 400, "model is required"),
        ({"model": MINILM.name}, "application/json", 400, "input is required"),
        ({"model": MINILM.name, "input": "x", "extra": 1}, "application/json", 400, "unknown field(s): extra"),
        ('{"model": ', "application/json", 400, "not valid JSON"),
        ("[1, 2]", "application/json", 400, "must be a JSON object"),
        ("model=x", "application/x-www-form-urlencoded", 415, "application/json"),
    ],
)
def test_invalid_submit_gets_4xx_naming_the_problem_and_creates_nothing(
    client, auth, body, content_type, status, message
):
    jobs_before = ProcrastinateJob.objects.count()

    response = post_json(client, body, auth, content_type=content_type)

    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert not InferenceRequest.objects.exists()
    assert ProcrastinateJob.objects.count() == jobs_before


@pytest.mark.parametrize(
    "header", [None, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer "]
)
def test_requests_without_a_valid_token_get_401(client, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = post_json(client, {"model": MINILM.name, "input": "x"}, headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert not InferenceRequest.objects.exists()


def test_users_see_and_act_only_on_their_own_requests(client, make_user, token_for):
    alice, bob = make_user("alice"), make_user("bob")
    mine = services.request_submit(user=alice, model=MINILM.name, raw_input="alice's text")
    as_bob = {"HTTP_AUTHORIZATION": token_for(bob)}

    assert client.get(f"{URL}/{mine.pk}", **as_bob).status_code == 404
    assert client.get(f"{URL}/{mine.pk}/result", **as_bob).status_code == 404
    assert client.post(f"{URL}/{mine.pk}/cancel", **as_bob).status_code == 404
    assert client.get(URL, **as_bob).json()["results"] == []
    mine.refresh_from_db()
    assert mine.status == "queued"


def test_staff_see_every_request(client, make_user, token_for):
    alice = make_user("alice")
    services.request_submit(user=alice, model=MINILM.name, raw_input="alice's text")
    as_staff = {"HTTP_AUTHORIZATION": token_for(make_user("ops", superuser=True))}

    assert len(client.get(URL, **as_staff).json()["results"]) == 1


def test_cancel_over_the_api(client, alice, auth):
    request = services.request_submit(user=alice, model=MINILM.name, raw_input="x")

    response = client.post(f"{URL}/{request.pk}/cancel", **auth)
    again = client.post(f"{URL}/{request.pk}/cancel", **auth)

    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_result_of_an_unfinished_request_is_409(client, alice, auth):
    request = services.request_submit(user=alice, model=MINILM.name, raw_input="x")
    response = client.get(f"{URL}/{request.pk}/result", **auth)
    assert response.status_code == 409 and "queued" in response.json()["error"]["message"]


@pytest.mark.parametrize(("query", "message"), [("status=bogus", "status must be one of"), ("limit=0", "between 1 and"), ("limit=x", "integer")])
def test_bad_list_queries_are_400(client, auth, query, message):
    response = client.get(f"{URL}?{query}", **auth)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_wrong_method_is_405_with_allow(client, auth):
    response = client.delete(URL, **auth)
    assert response.status_code == 405 and response["Allow"] == "GET, POST"


def test_openapi_document_is_served_and_describes_every_endpoint(client):
    document = client.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    # Every route of the API's URLconf but the document itself, in OpenAPI's path syntax.
    routes = {
        prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        for prefix, urls in (("/api/", api_urls), ("/v1/", openai_urls), ("/api/v1/", batch_api_urls))
        for pattern in urls.urlpatterns if pattern.name != "openapi"
    }
    assert "/api/v1/requests/{request_id}/run-again" in routes
    assert set(document["paths"]) == routes


def test_the_model_list_names_every_registered_model_with_its_facts(client, auth):
    models = client.get("/api/v1/models", **auth).json()["results"]
    assert [m["name"] for m in models] == list(REGISTRY)
    for listed, spec in zip(models, REGISTRY.values()):
        assert listed == {"name": spec.name, "title": spec.title, "description": spec.description, **spec.facts()}
    embeddings = next(m for m in models if m["name"] == MINILM.name)
    assert (embeddings["max_texts"], embeddings["max_chars"], embeddings["output_dim"]) == (256, 4000, 384)


def test_an_oversized_body_is_413_and_creates_nothing(client, auth, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_json(client, {"model": MINILM.name, "input": ["x" * 600, "y" * 600]}, auth)
    assert response.status_code == 413 and "too large" in response.json()["error"]["message"]
    assert not InferenceRequest.objects.exists()
