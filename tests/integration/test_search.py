"""Semantic search over a user's documents: indexing through the inference queue, states,
deletion, ownership, the page and the API. The model is stood in for by a bag-of-words
embedding (each word hashed to one of 384 dimensions), so the right passage is known; the real
model and runner are in tests/browser/test_search_page.py."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from product.inference import services as inference
from product.inference.models import InferenceRequest, RequestStatus
from product.queue import jobs as queue_jobs
from product.search import querying, selectors, services
from product.search.models import Chunk, Collection, Document, DocumentState

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/search"
QUEUE = """The queue lives in PostgreSQL. Runners take jobs with SELECT FOR UPDATE SKIP LOCKED.
No broker is needed."""
GARDEN = """Tomatoes grow best in full sun. Water the garden early in the morning.
Basil likes warm soil."""


def bag_of_words(text: str) -> np.ndarray:
    vector = np.zeros(384, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % 384] += 1
    return vector / max(np.linalg.norm(vector), 1e-6)


def run_queued(status=RequestStatus.SUCCEEDED, error=""):
    """Run every queued request as a runner would, with bag-of-words vectors."""
    queued = list(InferenceRequest.objects.filter(status=RequestStatus.QUEUED))
    inference.requests_start(claims=[inference.Claim(r.pk, r.job_id) for r in queued])
    outcomes = []
    for r in queued:
        if status == RequestStatus.SUCCEEDED:
            vectors = np.stack([bag_of_words(t) for t in r.inputs])
            outcomes.append(inference.Outcome(r.pk, r.job_id, status, output={"dim": 384}, embeddings=vectors, compute_ms=1.0))
        else:
            outcomes.append(inference.Outcome(r.pk, r.job_id, status, error=error))
    inference.requests_finish(outcomes=outcomes)


@pytest.fixture
def embedded_at_once(monkeypatch):
    """A query's request is run (with bag-of-words vectors) the moment the search waits for
    it; the real wait then finds it final."""
    from asgiref.sync import sync_to_async

    wait = querying.read_when_final

    async def run_then_wait(request_id, read, **kwargs):
        await sync_to_async(run_queued)()
        return await wait(request_id, read, **kwargs)

    monkeypatch.setattr(querying, "read_when_final", run_then_wait)


def indexed_collection(user, name="Notes", texts=(("queue.txt", QUEUE), ("garden.md", GARDEN))):
    collection = services.collection_create(user=user, name=name)
    services.documents_add(
        collection=collection,
        documents=[services.NewDocument(title, "." + title.split(".")[-1], text) for title, text in texts],
    )
    run_queued()
    return collection


def states(collection):
    services.chunks_collect(collection_ids=[collection.pk])
    documents = list(collection.documents.all())
    return {d.title: p for d, p in ((d, selectors.documents_progress(documents)[d.pk]) for d in documents)}


def test_uploads_are_chunked_and_indexed_through_bulk_requests(client, alice):
    client.force_login(alice)
    collection = services.collection_create(user=alice, name="Notes")
    response = client.post(f"/search/collections/{collection.pk}/", {"files": [
        SimpleUploadedFile("queue.txt", QUEUE.encode()),
        SimpleUploadedFile("garden.html", f"<html><body><p>{GARDEN}</p><script>x</script></body></html>".encode()),
    ]})
    assert response.status_code == 302
    requests = InferenceRequest.objects.filter(owner=alice)
    assert [(r.model, r.priority, r.status) for r in requests] == [("all-minilm-l6-v2", "bulk", "queued")] * 2
    assert {p.state for p in states(collection).values()} == {DocumentState.QUEUED}
    assert "script" not in Document.objects.get(title="garden.html").text

    run_queued()

    assert {p.state for p in states(collection).values()} == {DocumentState.INDEXED}
    assert not Chunk.objects.filter(collection=collection, embedding=None).exists()
    page = client.get(f"/search/collections/{collection.pk}/?partial=documents").content.decode()
    assert page.count('data-state="indexed"') == 2


def test_a_document_shows_progress_while_its_request_runs(alice):
    collection = services.collection_create(user=alice, name="Long")
    text = " ".join(f"Sentence number {i} is here." for i in range(300))
    (document,) = services.documents_add(collection=collection, documents=[services.NewDocument("long", "pasted", text)])
    request = InferenceRequest.objects.get(owner=alice)
    inference.requests_start(claims=[inference.Claim(request.pk, request.job_id)])
    inference.requests_progress(progress=[(inference.Claim(request.pk, request.job_id), 3)])

    progress = selectors.documents_progress([document])[document.pk]

    assert (progress.state, progress.done, progress.total) == (DocumentState.INDEXING, 3, document.chunk_count)


def test_a_failed_document_shows_the_reason(client, alice):
    collection = services.collection_create(user=alice, name="Notes")
    services.documents_add(collection=collection, documents=[services.NewDocument("a", "pasted", QUEUE)])
    run_queued(RequestStatus.FAILED, error="input[0] could not be run")
    client.force_login(alice)

    page = client.get(f"/search/collections/{collection.pk}/").content.decode()

    assert states(collection)["a"].state == DocumentState.FAILED
    assert "failed: input[0] could not be run" in page


def test_pruning_the_indexing_requests_keeps_the_vectors_of_a_collection_nobody_opened(alice):
    from datetime import timedelta

    from product.inference.retention import requests_prune

    collection = indexed_collection(alice)  # Run, but never shown nor searched: not collected.
    assert not Chunk.objects.filter(collection=collection, embedding__isnull=False).exists()
    InferenceRequest.objects.update(finished_at=timezone.now() - timedelta(days=60))

    assert requests_prune(older_than=timedelta(days=30)).requests == 2

    assert not Chunk.objects.filter(collection=collection, embedding__isnull=True).exists()
    assert {progress.state for progress in states(collection).values()} == {DocumentState.INDEXED}


def test_deleting_a_document_removes_its_chunks_and_cancels_its_waiting_jobs(client, alice):
    collection = services.collection_create(user=alice, name="Notes")
    (document,) = services.documents_add(collection=collection, documents=[services.NewDocument("a", "pasted", QUEUE)])
    request = InferenceRequest.objects.get(owner=alice)
    client.force_login(alice)

    assert client.post(f"/search/documents/{document.pk}/delete").status_code == 302

    assert not Chunk.objects.filter(document_id=document.pk).exists()
    request.refresh_from_db()
    assert request.status == RequestStatus.CANCELLED
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", [request.job_id])
        assert cursor.fetchone() == ("cancelled",)


def test_a_document_over_the_users_limit_adds_nothing(client, alice, settings):
    from product.quotas.models import UserQuota

    UserQuota.objects.update_or_create(user=alice, defaults={"max_queued_texts": 1})
    collection = services.collection_create(user=alice, name="Notes")
    client.force_login(alice)
    text = " ".join(f"Sentence number {i} is here." for i in range(300))

    response = client.post(f"/search/collections/{collection.pk}/", {"text": text})

    assert response.status_code == 400
    assert not Document.objects.exists() and not InferenceRequest.objects.exists()


def test_api_search_answers_the_right_passage_first_with_its_shape(client, alice, auth, embedded_at_once):
    indexed_collection(alice)

    response = client.post(SEARCH, {"query": "which jobs do runners take from the queue", "k": 2},
                           content_type="application/json", **auth)

    assert response.status_code == 200, response.content
    body = response.json()
    first = body["results"][0]
    assert first["document"]["title"] == "queue.txt"
    assert set(first) == {"score", "document", "chunk", "start", "end", "text", "highlighted_html"}
    document = Document.objects.get(pk=first["document"]["id"])
    assert document.text[first["start"]:first["end"]] == first["text"]
    assert "<mark>queue</mark>" in first["highlighted_html"] and "<mark>jobs</mark>" in first["highlighted_html"]
    assert body["results"][0]["score"] >= body["results"][1]["score"]


def test_search_covers_only_the_callers_collections_and_staff_only_when_asked(client, make_user, token_for, embedded_at_once):
    alice, boss = make_user("alice"), make_user("boss", staff=True)
    indexed_collection(alice)
    query = {"query": "queue runners jobs"}

    as_boss = client.post(SEARCH, query, content_type="application/json", HTTP_AUTHORIZATION=token_for(boss))
    everyone = client.post(SEARCH, {**query, "all": True}, content_type="application/json", HTTP_AUTHORIZATION=token_for(boss))
    alice_all = client.post(SEARCH, {**query, "all": True}, content_type="application/json", HTTP_AUTHORIZATION=token_for(alice))

    assert as_boss.status_code == 200 and as_boss.json()["results"] == []
    assert everyone.json()["results"][0]["document"]["title"] == "queue.txt"
    assert alice_all.status_code == 403


def test_another_users_collection_is_404_in_pages_and_api(client, make_user, token_for):
    alice, bob = make_user("alice"), make_user("bob")
    collection = services.collection_create(user=alice, name="Private")
    (document,) = services.documents_add(collection=collection, documents=[services.NewDocument("a", "pasted", QUEUE)])
    client.force_login(bob)

    assert client.get(f"/search/collections/{collection.pk}/").status_code == 404
    assert client.post(f"/search/documents/{document.pk}/delete").status_code == 404
    assert client.post(f"/search/collections/{collection.pk}/delete").status_code == 404
    response = client.post(SEARCH, {"query": "q", "collection": collection.pk},
                           content_type="application/json", HTTP_AUTHORIZATION=token_for(bob))
    assert response.status_code == 404
    assert Document.objects.filter(pk=document.pk).exists()


def test_search_page_highlights_escaped_passages(client, alice, embedded_at_once):
    indexed_collection(alice, texts=(("x.txt", "The <b>queue</b> & its jobs."),))
    client.force_login(alice)

    page = client.get("/search/?q=queue").content.decode()

    assert "&lt;b&gt;<mark>queue</mark>&lt;/b&gt; &amp; its jobs." in page


@pytest.mark.parametrize("body, code", [
    ({"query": ""}, 400), ({"query": "x", "k": 0}, 400), ({"query": 3}, 400), ({"q": "x"}, 400),
])
def test_bad_searches_are_4xx_and_create_no_request(client, auth, body, code):
    response = client.post(SEARCH, body, content_type="application/json", **auth)
    assert response.status_code == code and "error" in response.json()
    assert not InferenceRequest.objects.exists()


def test_the_search_can_use_the_hnsw_index(alice):
    """On a few rows PostgreSQL rightly prefers a scan; with scans made dear the plan shows the
    index serves the query's ORDER BY (bench/search_scale.py shows it chosen at 100,000 rows)."""
    indexed_collection(alice)
    query = "[" + ",".join(["0.05"] * 384) + "]"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute("EXPLAIN " + selectors.search_sql(everyone=False, exact=False),
                       {"q": query, "k": 10, "candidates": 100, "owner": alice.pk, "collections": None})
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using chunk_embedding_hnsw" in plan


def test_the_openapi_document_has_the_search(client):
    assert "/api/v1/search" in client.get("/api/openapi.json").json()["paths"]


def test_a_users_passages_are_found_when_others_fill_the_index_candidates(make_user):
    """Bob's 150 chunks are all nearer the query than Alice's one: the index's 100 candidates
    hold none of hers, and the exact scan of her own chunks finds it."""
    alice, bob = make_user("alice"), make_user("bob")
    indexed_collection(bob, texts=[(f"q{i}.txt", f"queue runners jobs {i}") for i in range(150)])
    indexed_collection(alice, texts=(("garden.md", GARDEN),))
    services.chunks_collect(collection_ids=None)

    hits = selectors.chunks_nearest(user=alice, query=bag_of_words("queue runners jobs"), k=3)

    assert [h.document_title for h in hits] == ["garden.md"]


def test_the_sample_collection_is_this_projects_docs_queued_for_indexing(client, alice):
    client.force_login(alice)
    assert "Add the sample collection" in client.get("/search/collections/").content.decode()

    response = client.post("/search/collections/sample")

    collection = Collection.objects.get(owner=alice)
    assert response.url == f"/search/collections/{collection.pk}/"
    assert "search.md" in set(collection.documents.values_list("title", flat=True))
    assert InferenceRequest.objects.filter(owner=alice, priority="bulk").exists()
