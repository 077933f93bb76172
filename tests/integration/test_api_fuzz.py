"""Property-based fuzzing of the JSON API, driven by its own OpenAPI document.

Bodies valid by the document's schema (every registered model's input schema, whatever JSON
Schema keywords it uses: tests/support/json_schema.py), the same with junk in any field, arbitrary JSON,
malformed bytes, huge and exotic strings, Idempotency-Key headers; random ids on the request
endpoints. Whatever comes in, the API answers without a server error, every 4xx carries
``{"error": {"code", "message"}}``, only a 201 creates a request row and a job, and a submit
with a key sent again returns the same request.

Runs in-process through Django's test client (about a thousand cases in well under a minute).
"""

from __future__ import annotations

import json
from urllib.parse import quote_from_bytes

import pytest
from django.test import Client, override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from procrastinate.contrib.django.models import ProcrastinateJob

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.inference.registry import REGISTRY
from tests.support.json_schema import from_schema

pytestmark = pytest.mark.django_db

fuzz = settings(
    deadline=None,
    database=None,  # Nothing written into the working tree; failures print their example.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # The fixtures hold for every example, by design.
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# Any character, lone surrogates included: json.dumps escapes them (\ud800), json.loads on the
# server gives them back as str, and they cannot be encoded for PostgreSQL.
ANY_CHAR = st.characters(codec=None, exclude_categories=())
TEXT = st.text(ANY_CHAR, max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6
    + ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", ""]
)


@pytest.fixture(scope="module")
def openapi_document() -> dict:
    """The document as clients get it, from /api/openapi.json."""
    response = Client(HTTP_X_FORWARDED_PROTO="https").get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def submit_body_strategy(openapi_document) -> st.SearchStrategy[bytes]:
    operation = openapi_document["paths"]["/api/v1/requests"]["post"]
    return submit_bodies(operation["requestBody"]["content"]["application/json"]["schema"])


@pytest.fixture(autouse=True)
def generous_limits():
    """Hundreds of examples submit as one user; the quotas would soon refuse them all with 429
    and leave the body parsing unfuzzed (tests/integration/test_limits.py covers the limits)."""
    with override_settings(INFERENCE_SUBMIT_BURST=10**6, INFERENCE_MAX_QUEUED_TEXTS=10**9):
        yield


@pytest.fixture
def known_ids(alice, make_user) -> list[int]:
    """Ids that exist: alice's queued and cancelled requests, and one of bob's."""
    mine = [services.request_submit(user=alice, model=MINILM.name, raw_input=t) for t in "ab"]
    services.request_cancel(request=mine[1])
    bob = services.request_submit(user=make_user("bob"), model=MINILM.name, raw_input="c")
    return [mine[0].pk, mine[1].pk, bob.pk]


def _counts() -> tuple[int, int]:
    return InferenceRequest.objects.count(), ProcrastinateJob.objects.count()


def check(response, before: tuple[int, int]) -> None:
    """The properties every answer must have."""
    status = response.status_code
    event(f"answered {status}")  # --hypothesis-show-statistics shows the mix of answers.
    assert status < 500, response.content[:500]
    if 400 <= status < 500:
        assert response["Content-Type"].startswith("application/json"), response.content[:200]
        error = json.loads(response.content)["error"]
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
    after = _counts()
    if status == 201:
        assert after == (before[0] + 1, before[1] + 1)
        assert InferenceRequest.objects.filter(pk=response.json()["id"]).exists()
    elif status == 200 and response.get("Idempotent-Replayed"):  # A replay: nothing new.
        assert after == before
        assert InferenceRequest.objects.filter(pk=response.json()["id"]).exists()
    else:
        assert after == before, f"a {status} answer created rows"


def _encode(value) -> bytes:
    return json.dumps(value).encode()


def submit_bodies(submit_schema: dict) -> st.SearchStrategy[bytes]:
    valid = from_schema(submit_schema)
    model_names = st.sampled_from(list(REGISTRY))
    junk_fields = st.fixed_dictionaries(
        {},
        optional={
            "model": model_names | JSON_VALUES,
            "input": JSON_VALUES | st.lists(TEXT, max_size=5),
            "extra": JSON_VALUES,
        },
    )
    exotic_texts = st.fixed_dictionaries(
        {
            "model": model_names,
            "input": st.one_of(
                st.text(ANY_CHAR, min_size=1, max_size=200),
                st.lists(st.text(ANY_CHAR, min_size=1, max_size=50), min_size=1, max_size=8),
                st.integers(3990, 4010).map(lambda n: "é" * n),
                st.integers(250, 260).map(lambda n: ["x"] * n),
            ),
        }
    )
    json_bodies = st.one_of(valid, valid, junk_fields, exotic_texts, JSON_VALUES).map(_encode)
    truncated = st.tuples(valid.map(_encode), st.integers(0, 200)).map(lambda p: p[0][: p[1]])
    return st.one_of(
        json_bodies, json_bodies, json_bodies,
        truncated,
        st.binary(max_size=300),
        st.text(ANY_CHAR, max_size=100).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.just(b'{"model": "all-minilm-l6-v2", "input": "\xff\xfe"}'),
        st.just(b'{"model": "all-minilm-l6-v2", "input": "\\u0000"}'),
        st.integers(1, 10_000).map(lambda depth: b"[" * depth + b"]" * depth),
    )


def _variant(document: dict, model: str) -> dict:
    """The submit body's schema for ``model``, from the document's oneOf."""
    operation = document["paths"]["/api/v1/requests"]["post"]
    variants = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    [variant] = [v for v in variants if v["properties"]["model"] == {"const": model}]
    return variant


def test_the_document_has_a_submit_schema_for_every_registered_model(openapi_document):
    operation = openapi_document["paths"]["/api/v1/requests"]["post"]
    variants = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert [v["properties"]["model"]["const"] for v in variants] == list(REGISTRY)
    for spec in REGISTRY.values():
        assert _variant(openapi_document, spec.name)["properties"]["input"] == spec.input_schema()


@pytest.mark.parametrize("model", list(REGISTRY))
@settings(fuzz, max_examples=80)
@given(data=st.data())
def test_bodies_valid_by_a_model_s_schema_are_accepted_or_refused_with_a_reason(
    data, model, client, auth, openapi_document
):
    """Each model's own share of valid bodies (the mixed test above spreads its examples over
    every model): a body its schema allows is created, or refused with a 400 saying why (the
    schema cannot say everything, e.g. that a text holds no NUL)."""
    body = data.draw(from_schema(_variant(openapi_document, model)), label="body")
    before = _counts()

    response = client.post("/api/v1/requests", data=_encode(body), content_type="application/json", **auth)

    check(response, before)
    assert response.status_code in (201, 400)
    if response.status_code == 201:
        assert InferenceRequest.objects.get(pk=response.json()["id"]).model == model


def ids(known: list[int]) -> st.SearchStrategy[int]:
    """Existing ids, ids of nobody's requests, and integers far out of the database's range."""
    return st.one_of(
        st.sampled_from(known),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.integers(min_value=0, max_value=10**6),
    )


AUTHORIZATION = st.sampled_from(["valid"] * 8 + ["none", "Bearer gq_not-a-token", "Basic eA=="])
# No key mostly; short printable keys, which repeat (replays and conflicts); anything else.
IDEMPOTENCY_KEYS = st.one_of(
    st.none(), st.none(), st.none(),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=2),
    st.text(ANY_CHAR, max_size=300),
)


def _headers(choice: str, auth: dict) -> dict:
    if choice == "valid":
        return auth
    return {} if choice == "none" else {"HTTP_AUTHORIZATION": choice}


@settings(fuzz, max_examples=650)
@given(data=st.data())
def test_submitting_anything_never_fails_and_only_a_201_creates(
    data, client, auth, submit_body_strategy, known_ids
):
    body = data.draw(submit_body_strategy, label="body")
    content_type = data.draw(CONTENT_TYPES, label="content_type")
    headers = _headers(data.draw(AUTHORIZATION, label="authorization"), auth)
    key = data.draw(IDEMPOTENCY_KEYS, label="idempotency_key")
    if key is not None:
        headers = {**headers, "HTTP_IDEMPOTENCY_KEY": key}
    before = _counts()

    response = client.post("/api/v1/requests", data=body, content_type=content_type, **headers)

    check(response, before)
    if key is not None and response.status_code == 201:
        before = _counts()
        again = client.post("/api/v1/requests", data=body, content_type=content_type, **headers)
        check(again, before)
        assert again.status_code == 200 and again.json()["id"] == response.json()["id"]


@settings(fuzz, max_examples=200)
@given(data=st.data())
def test_getting_any_id_never_fails(data, client, auth, known_ids):
    request_id = data.draw(ids(known_ids), label="request_id")
    suffix = data.draw(st.sampled_from(["", "/result"]), label="suffix")
    headers = _headers(data.draw(AUTHORIZATION, label="authorization"), auth)
    before = _counts()

    response = client.get(f"/api/v1/requests/{request_id}{suffix}", **headers)

    check(response, before)


@settings(fuzz, max_examples=200)
@given(data=st.data())
def test_cancelling_any_id_never_fails_and_creates_nothing(data, client, auth, known_ids):
    request_id = data.draw(ids(known_ids), label="request_id")
    headers = _headers(data.draw(AUTHORIZATION, label="authorization"), auth)
    before = _counts()

    response = client.post(f"/api/v1/requests/{request_id}/cancel", **headers)

    check(response, before)


# Raw query values, any bytes: a URL cannot carry a lone surrogate, so text goes in encoded.
QUERY_VALUES = st.one_of(
    st.binary(max_size=30),
    TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers().map(lambda n: str(n).encode()),
)


@settings(fuzz, max_examples=100)
@given(
    status=QUERY_VALUES | st.sampled_from(["", *RequestStatus.values]).map(str.encode),
    limit=QUERY_VALUES | st.integers(-5, 300).map(lambda n: str(n).encode()),
)
def test_listing_with_any_query_never_fails(client, auth, status, limit):
    before = _counts()
    query = f"status={quote_from_bytes(status)}&limit={quote_from_bytes(limit)}"

    response = client.get(f"/api/v1/requests?{query}", **auth)

    check(response, before)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"model": "all-minilm-l6-v2", "input": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"model": "all-minilm-l6-v2", "input": ["ok", "x\\udfff"]}', "input[1] contains a lone"),
    ],
)
def test_bodies_that_once_caused_server_errors_are_refused_with_400(client, auth, body, message):
    """Found by the fuzzing above: Python's JSON parser recursing past its limit, and escaped
    surrogate halves that PostgreSQL refuses to store."""
    before = _counts()

    response = client.post("/api/v1/requests", data=body, content_type="application/json", **auth)

    assert response.status_code == 400 and message in response.json()["error"]["message"]
    assert _counts() == before


def test_an_api_path_the_routes_do_not_take_gets_the_json_404(client, auth):
    """Found by the fuzzing above: a negative id is an integer by the document, but the route
    takes digits only, and the miss used to get Django's HTML page."""
    response = client.get("/api/v1/requests/-1", **auth)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
