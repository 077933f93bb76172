"""Semantic search at scale: HNSW build time, query latency (p50/p99) and recall@10 against an
exact scan, on a generated corpus of ``--chunks`` chunks in one collection; and, with
``--real``, the real model's indexing rate for a small corpus (this project's docs/*.md) through
the queue and a runner (``python -m gpu_runner --drain``).

The generated vectors are shaped like text embeddings, whose intrinsic dimension is far below
384: points of a ``--latent``-dimensional mixture of ``--clusters`` clusters, projected to 384
dimensions, plus a little noise, L2-normalised, written by COPY. (Isotropic noise in all 384
dimensions, ``--latent 384``, makes every neighbour nearly tied, which no text corpus is, and
recall drops accordingly.) Queries are chunks' latent points moved a little. Recall is measured
for each ``--ef-search`` value (``selectors.EF_SEARCH``: the index's candidates). The search timed is ``selectors.chunks_nearest`` (its transaction, ``SET LOCAL
hnsw.ef_search``, the index scan, the owner filter, the join to documents): the query's own
embedding is not included (the model's time; see bench/request_latency.py).

    .venv/bin/python bench/search_scale.py --chunks 100000 --queries 200 --real
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import describe_machine, percentile, setup_django

DIM = 384


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--latent", type=int, default=24)
    parser.add_argument("--ef-search", default="40,100,200,400", help="candidate counts to measure")
    parser.add_argument("--real", action="store_true", help="also index docs/*.md with the real model")
    options = parser.parse_args()
    setup_django("product_bench_search")
    print(describe_machine())

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import connection

    from product.search import selectors, services
    from product.search.models import Chunk, Collection, Document

    user = get_user_model().objects.create_user("bench-search")
    collection = Collection.objects.create(owner=user, name="generated")
    document = Document.objects.create(collection=collection, title="generated", kind="pasted", text="", chunk_count=options.chunks)
    rng = np.random.default_rng(14)
    projection = rng.standard_normal((options.latent, DIM)).astype(np.float32)
    centres = rng.standard_normal((options.clusters, options.latent)).astype(np.float32)
    latent = centres[rng.integers(0, options.clusters, options.chunks)] + 0.5 * rng.standard_normal((options.chunks, options.latent)).astype(np.float32)

    def embed(points):
        vectors = points @ projection + 0.3 * rng.standard_normal((len(points), DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    vectors = embed(latent)

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX chunk_embedding_hnsw")
        started = time.perf_counter()
        buffer = io.StringIO()
        for i, vector in enumerate(vectors):
            literal = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
            buffer.write(f"{document.pk}\t{collection.pk}\t{i}\t0\t0\tchunk {i}\t{literal}\n")
        with cursor.copy(
            f"COPY {Chunk._meta.db_table} (document_id, collection_id, position, start, \"end\", text, embedding) FROM STDIN"
        ) as copy:
            copy.write(buffer.getvalue())
        copy_s = time.perf_counter() - started
        cursor.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX chunk_embedding_hnsw ON {Chunk._meta.db_table} "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        build_s = time.perf_counter() - started
        cursor.execute(f"ANALYZE {Chunk._meta.db_table}")
    print(f"corpus: {options.chunks} chunks of {DIM} dims in {options.clusters} clusters; COPY {copy_s:.1f} s")
    print(f"HNSW build (m=16, ef_construction=64): {build_s:.1f} s ({options.chunks / build_s:,.0f} chunks/s)")

    queries = embed(latent[rng.integers(0, options.chunks, options.queries)] + 0.3 * rng.standard_normal((options.queries, options.latent)).astype(np.float32))

    with connection.cursor() as cursor:
        literal = "[" + ",".join(f"{x:.6f}" for x in queries[0]) + "]"
        cursor.execute("EXPLAIN " + selectors.search_sql(everyone=False, exact=False), {
            "q": literal, "k": options.k, "candidates": 100, "owner": user.pk, "collections": None,
        })
        plan = "\n".join(row[0] for row in cursor.fetchall())
    print("plan uses the HNSW index:", "Index Scan using chunk_embedding_hnsw" in plan)

    exact_ms, exact_ids = [], []
    for query in queries:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            literal = "[" + ",".join(repr(float(x)) for x in query) + "]"
            cursor.execute(selectors.search_sql(everyone=False, exact=True), {
                "q": literal, "k": options.k, "owner": user.pk, "collections": None,
            })
            exact_ids.append({row[0] for row in cursor.fetchall()})
        exact_ms.append((time.perf_counter() - started) * 1000)
    print(f"exact scan (the baseline): p50 {statistics.median(exact_ms):.1f} ms, p99 {percentile(exact_ms, 99):.1f} ms")
    for ef in (int(x) for x in options.ef_search.split(",")):
        selectors.EF_SEARCH = ef
        for query in queries[:5]:  # Warm the index's pages.
            selectors.chunks_nearest(user=user, query=query, k=options.k)
        latencies, recalls = [], []
        for query, exact in zip(queries, exact_ids):
            started = time.perf_counter()
            hits = selectors.chunks_nearest(user=user, query=query, k=options.k)
            latencies.append((time.perf_counter() - started) * 1000)
            recalls.append(len(exact & {h.chunk_id for h in hits}) / options.k)
        p50 = statistics.median(latencies)
        print(f"search (HNSW, k={options.k}, ef_search={ef}), {options.queries} queries: p50 {p50:.1f} ms, "
              f"p99 {percentile(latencies, 99):.1f} ms ({statistics.median(exact_ms) / p50:.1f}x faster than "
              f"exact); recall@{options.k} {statistics.mean(recalls):.3f}")

    if options.real:
        _real(user, services)


def _real(user, services) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.processes import run_drain

    from product.inference.models import InferenceRequest
    from product.search.models import Collection

    docs = sorted((Path(__file__).resolve().parents[1] / "docs").glob("*.md"))
    collection = Collection.objects.create(owner=user, name="docs")
    documents = services.documents_add(collection=collection, documents=[
        services.NewDocument(p.name, ".md", p.read_text(encoding="utf-8")) for p in docs
    ])
    chunks = sum(d.chunk_count for d in documents)
    started = time.perf_counter()
    runner = run_drain(Path(tempfile.mkdtemp()), GPU_RUNNER_MODELS="all-minilm-l6-v2")
    wall = time.perf_counter() - started
    requests = InferenceRequest.objects.filter(owner=user)
    compute = sum(r.compute_ms or 0 for r in requests) / 1000
    started = time.perf_counter()
    copied = services.chunks_collect(collection_ids=[collection.pk])
    collect_s = time.perf_counter() - started
    print(f"real model: {len(docs)} documents, {chunks} chunks, {requests.count()} requests; runner "
          f"(start, load, warm, run, exit) {wall:.1f} s; forward passes {compute:.1f} s = "
          f"{chunks / compute:.0f} chunks/s; vectors copied into chunks: {copied} in {collect_s * 1000:.0f} ms"
          f"; runner exit {runner.popen.returncode}")


if __name__ == "__main__":
    main()
