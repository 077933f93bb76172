"""Embeddings stored as pgvector rows: written by binary COPY in the runner's finish, only for
the requests it finished, never twice; served as JSON numbers, base64 and .npy; results stored as
JSON before the rows existed are moved into them by the migration."""

import base64
import importlib
import io

import numpy as np
import pytest
from django.db import DataError, connection, transaction

from product.inference import results, services
from product.inference.models import InferenceEmbedding, InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM

pytestmark = pytest.mark.django_db

URL = "/api/v1/requests"


def _running(user, texts):
    request = services.request_submit(user=user, model=MINILM.name, raw_input=texts)
    assert request.job_id in services.requests_start(
        claims=[services.Claim(request.pk, request.job_id)]
    )
    return request


def _vectors(n, seed, dim=MINILM.output_dim):
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _succeeded(request, embeddings, job_id=None):
    return services.Outcome(
        request.pk, job_id or request.job_id, RequestStatus.SUCCEEDED,
        output={"dim": embeddings.shape[1]}, embeddings=embeddings, compute_ms=1.0,
    )


def test_a_group_of_results_is_stored_as_one_vector_row_per_text(alice):
    first, second = _running(alice, ["a", "b", "c"]), _running(alice, ["d"])
    vectors = {first.pk: _vectors(3, 1), second.pk: _vectors(1, 2)}

    written = services.requests_finish(
        outcomes=[_succeeded(r, vectors[r.pk]) for r in (first, second)]
    )

    assert written == {first.pk, second.pk}
    for request in (first, second):
        stored = results.embeddings_read(request_id=request.pk)
        assert stored.dtype == np.float32
        np.testing.assert_array_equal(stored, vectors[request.pk])  # Bit for bit.
        request.refresh_from_db()
        assert request.output == {"dim": MINILM.output_dim}  # No numbers left in the JSON.
    positions = InferenceEmbedding.objects.filter(request=first).order_by("position")
    assert list(positions.values_list("position", flat=True)) == [0, 1, 2]
    # PostgreSQL reads them as the vectors they are (pgvector's own functions agree).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT vector_dims(embedding), round(vector_norm(embedding)::numeric, 4) "
            "FROM inference_embedding WHERE request_id = %s", [second.pk],
        )
        assert cursor.fetchall() == [(MINILM.output_dim, 1)]


def test_a_request_no_longer_run_by_the_job_gets_no_rows(alice):
    kept, cancelled = _running(alice, ["kept"]), _running(alice, ["cancelled"])
    services.request_cancel(request=cancelled)

    written = services.requests_finish(
        outcomes=[_succeeded(r, _vectors(1, r.pk)) for r in (kept, cancelled)]
    )

    assert written == {kept.pk}
    assert InferenceEmbedding.objects.filter(request=kept).count() == 1
    assert not InferenceEmbedding.objects.filter(request=cancelled).exists()


def test_a_stale_job_writes_nothing_over_the_run_that_replaced_it(alice):
    request = _running(alice, ["a", "b"])
    stale_job = request.job_id
    services.requests_finish(outcomes=[_succeeded(request, _vectors(2, 1))])
    request = services.request_requeue(request=InferenceRequest.objects.get(pk=request.pk))
    assert not InferenceEmbedding.objects.filter(request=request).exists()  # Requeue cleared them.
    services.requests_start(claims=[services.Claim(request.pk, request.job_id)])

    assert services.requests_finish(outcomes=[_succeeded(request, _vectors(2, 9), stale_job)]) == set()
    assert not InferenceEmbedding.objects.filter(request=request).exists()

    fresh = _vectors(2, 3)
    assert services.requests_finish(outcomes=[_succeeded(request, fresh)]) == {request.pk}
    np.testing.assert_array_equal(results.embeddings_read(request_id=request.pk), fresh)


def test_a_request_run_again_has_each_row_once(alice):
    request = _running(alice, ["a", "b", "c"])
    services.requests_finish(outcomes=[_succeeded(request, _vectors(3, 1))])

    request = services.request_requeue(request=InferenceRequest.objects.get(pk=request.pk))
    services.requests_start(claims=[services.Claim(request.pk, request.job_id)])
    again = _vectors(3, 2)
    services.requests_finish(outcomes=[_succeeded(request, again)])

    assert InferenceEmbedding.objects.filter(request=request).count() == 3
    np.testing.assert_array_equal(results.embeddings_read(request_id=request.pk), again)


def test_an_embedding_postgresql_refuses_undoes_the_whole_write(alice):
    """pgvector refuses NaN: the group's UPDATE goes with the COPY, so the runner can write
    the group again job by job and fail only the request whose result was refused."""
    good, bad = _running(alice, ["good"]), _running(alice, ["bad"])
    broken = _vectors(1, 2)
    broken[0, 5] = np.nan

    with pytest.raises(DataError, match="NaN not allowed in vector"), transaction.atomic():
        services.requests_finish(
            outcomes=[_succeeded(good, _vectors(1, 1)), _succeeded(bad, broken)]
        )

    assert set(
        InferenceRequest.objects.filter(pk__in=[good.pk, bad.pk]).values_list("status", flat=True)
    ) == {RequestStatus.RUNNING}
    assert not InferenceEmbedding.objects.filter(request__in=[good, bad]).exists()


def test_deleting_a_request_deletes_its_rows_in_the_database(alice):
    request = _running(alice, ["a", "b"])
    services.requests_finish(outcomes=[_succeeded(request, _vectors(2, 1))])
    # A raw DELETE, as retention's is: the foreign key cascades in PostgreSQL itself.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM inference_inferencerequest WHERE id = %s", [request.pk])
    assert not InferenceEmbedding.objects.filter(request_id=request.pk).exists()


@pytest.fixture
def stored(alice):
    request = _running(alice, ["A man is eating food.", "A man eats a meal."])
    vectors = _vectors(2, 7)
    services.requests_finish(outcomes=[_succeeded(request, vectors)])
    return request, vectors


def test_the_result_keeps_its_json_shape(client, auth, stored):
    request, vectors = stored

    response = client.get(f"{URL}/{request.pk}/result", **auth)

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="request-{request.pk}.json"'
    body = response.json()
    assert list(body) == ["id", "model", "dim", "embeddings"]
    assert (body["id"], body["model"], body["dim"]) == (request.pk, MINILM.name, MINILM.output_dim)
    assert all(isinstance(value, float) for value in body["embeddings"][0])
    np.testing.assert_array_equal(np.array(body["embeddings"], dtype=np.float32), vectors)


def test_base64_embeddings_are_little_endian_float32(client, auth, stored):
    request, vectors = stored

    body = client.get(f"{URL}/{request.pk}/result?encoding_format=base64", **auth).json()

    decoded = [np.frombuffer(base64.b64decode(text), dtype="<f4") for text in body["embeddings"]]
    np.testing.assert_array_equal(np.stack(decoded), vectors)
    assert body["dim"] == MINILM.output_dim


def test_an_unknown_encoding_format_is_400_naming_the_allowed_ones(client, auth, stored):
    request, _ = stored
    response = client.get(f"{URL}/{request.pk}/result?encoding_format=float16", **auth)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "encoding_format must be one of: float, base64."


def test_the_npy_download_is_the_float32_array(client, auth, stored):
    request, vectors = stored

    response = client.get(f"{URL}/{request.pk}/result.npy", **auth)

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="request-{request.pk}.npy"'
    array = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert array.dtype == np.dtype("<f4") and array.shape == (2, MINILM.output_dim)
    np.testing.assert_array_equal(array, vectors)


def test_downloads_follow_the_access_rules(client, make_user, token_for, stored):
    request, _ = stored
    stranger = {"HTTP_AUTHORIZATION": token_for(make_user("bob"))}
    operator = {"HTTP_AUTHORIZATION": token_for(
        make_user("ops", staff=True, perms=["inference.view_inferencerequest"])
    )}
    for path in ("result", "result.npy"):
        assert client.get(f"{URL}/{request.pk}/{path}", **stranger).status_code == 404
        assert client.get(f"{URL}/{request.pk}/{path}", **operator).status_code == 200
        assert client.get(f"{URL}/{request.pk}/{path}").status_code == 401


def test_the_npy_download_of_an_unfinished_request_is_409(client, alice, auth):
    request = services.request_submit(user=alice, model=MINILM.name, raw_input="x")
    response = client.get(f"{URL}/{request.pk}/result.npy", **auth)
    assert response.status_code == 409 and "queued" in response.json()["error"]["message"]


def test_the_request_page_previews_the_rows_and_links_both_downloads(client, alice, stored):
    request, vectors = stored
    client.force_login(alice)

    page = client.get(f"/requests/{request.pk}/").content.decode()

    assert f'href="/api/v1/requests/{request.pk}/result"' in page
    assert f'href="/api/v1/requests/{request.pk}/result.npy"' in page
    assert f"<td>{round(float(vectors[0] @ vectors[1]), 3)}</td>" in page  # Their similarity.


def _old_shape(user, embeddings):
    """A succeeded request as it was stored before 0006: its embeddings in ``output``."""
    request = _running(user, [f"text {i}" for i in range(len(embeddings))])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inference_inferencerequest SET status = 'succeeded', output = %s::jsonb "
            "WHERE id = %s",
            [f'{{"dim": {len(embeddings[0])}, "embeddings": {embeddings}}}', request.pk],
        )
    return request


def test_the_migration_moves_old_json_results_into_rows(client, alice, auth):
    old = [[0.6, 0.8, 0.0], [0.0, 0.28, -0.96]]
    request = _old_shape(alice, old)
    migration = importlib.import_module("product.inference.migrations.0007_embeddings_out_of_output")

    with connection.schema_editor() as editor:
        migration.embeddings_to_rows(None, editor)

    request.refresh_from_db()
    assert request.output == {"dim": 3}
    assert list(
        InferenceEmbedding.objects.filter(request=request).order_by("position")
        .values_list("position", flat=True)
    ) == [0, 1]
    np.testing.assert_array_equal(
        results.embeddings_read(request_id=request.pk), np.array(old, dtype=np.float32)
    )
    body = client.get(f"{URL}/{request.pk}/result", **auth).json()
    assert body == {"id": request.pk, "model": MINILM.name, "dim": 3,
                    "embeddings": [[0.6, 0.8, 0.0], [0.0, 0.28, -0.96]]}


def test_migrating_back_puts_the_embeddings_back_into_output(alice):
    old = [[0.6, 0.8], [-0.28, 0.96]]
    request = _old_shape(alice, old)
    migration = importlib.import_module("product.inference.migrations.0007_embeddings_out_of_output")

    with connection.schema_editor() as editor:
        migration.embeddings_to_rows(None, editor)
        migration.embeddings_to_output(None, editor)

    request.refresh_from_db()
    assert request.output == {"dim": 2, "embeddings": old}
    assert not InferenceEmbedding.objects.filter(request=request).exists()


def test_a_result_an_older_runner_wrote_as_json_is_served_the_same(client, alice, auth):
    """During a rolling deploy, a runner of the previous release still writes JSON results."""
    request = _old_shape(alice, [[0.6, 0.8]])

    body = client.get(f"{URL}/{request.pk}/result", **auth).json()
    npy = np.load(io.BytesIO(client.get(f"{URL}/{request.pk}/result.npy", **auth).content))

    assert body == {"id": request.pk, "model": MINILM.name, "dim": 2, "embeddings": [[0.6, 0.8]]}
    np.testing.assert_array_equal(npy, np.array([[0.6, 0.8]], dtype=np.float32))
