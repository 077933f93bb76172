"""OpenAI's own Python client against the OpenAI-compatible API of a real uvicorn web process
and a real runner: a string, a list, base64 and float, and the errors it raises."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from inference_models.sentence_embedding.spec import SPEC as MINILM
from inference_models.sentence_similarity.spec import SPEC as SIMILARITY
from product.inference.models import InferenceRequest, RequestStatus

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def _secret(header: str) -> str:
    return header.removeprefix("Bearer ")


def test_the_openai_client_embeds_a_string_a_list_and_base64(live_stack, make_user, token_for):
    client = openai.OpenAI(
        base_url=f"{live_stack.base_url}/v1", api_key=_secret(token_for(make_user("alice"))),
        max_retries=0,
    )
    one = client.embeddings.create(model=MINILM.name, input="A man is eating food.", encoding_format="float")
    assert one.object == "list" and one.model == MINILM.name
    assert [(item.object, item.index) for item in one.data] == [("embedding", 0)]
    vector = np.array(one.data[0].embedding)
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-4
    # [CLS] a man is eating food . [SEP], as the runner's tokenizer counted them.
    assert one.usage.prompt_tokens == one.usage.total_tokens == 8

    texts = ["A man is eating food.", "A man eats a meal.", "The stock market fell sharply today."]
    # Without encoding_format the client asks for base64 and decodes it itself.
    many = client.embeddings.create(model=MINILM.name, input=texts)
    assert [item.index for item in many.data] == [0, 1, 2]
    vectors = np.array([item.embedding for item in many.data])
    np.testing.assert_allclose(vectors[0], vector, atol=1e-6)  # base64 and float agree.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert many.usage.prompt_tokens > one.usage.prompt_tokens

    with pytest.raises(openai.NotFoundError) as unknown:
        client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(model=MINILM.name, input="")
    assert empty.value.param == "input"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=SIMILARITY.name, input="hi")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{live_stack.base_url}/v1", api_key="gq_wrong", max_retries=0).models.list()

    assert MINILM.name in [model.id for model in client.models.list()]
    # Two succeeded requests, each with its token count; the refused calls created none.
    rows = InferenceRequest.objects.order_by("id")
    assert [(row.status, row.input_tokens) for row in rows] == [
        (RequestStatus.SUCCEEDED, 8), (RequestStatus.SUCCEEDED, many.usage.prompt_tokens)
    ]
    assert all(row.priority == "interactive" for row in rows)
