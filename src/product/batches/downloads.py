"""A batch's results as files, produced a part at a time (never whole in memory): JSONL in the
shape of OpenAI's batch output, and a NumPy ``.npy`` of every text's embedding in input order.

Both read each part's vectors from its request's embedding rows (``inference.results``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import orjson

from product.batches.models import Batch
from product.batches.selectors import batch_parts
from product.inference import results
from product.inference.models import RequestStatus
from product.inference.registry import get_spec


def output_jsonl(batch: Batch) -> Iterator[bytes]:
    """One line per input line of the parts that ended: ``{"id", "custom_id", "response":
    {"status_code": 200, "body": {"object": "list", "data": [{"object": "embedding", "index",
    "embedding"}], "model"}}, "error": null}``, or for a part that failed ``"response": null``
    and ``"error": {"code": "inference_failed", "message"}``. Lines of parts that were
    cancelled or have not run yet are left out. Bytes of about one part each."""
    for _, _, lines, request_id, status, error in batch_parts(batch):
        if status == RequestStatus.SUCCEEDED:
            vectors = results.embeddings_read(request_id=request_id)
            yield _succeeded_lines(batch, lines, vectors)
        elif status == RequestStatus.FAILED:
            yield _failed_lines(batch, lines, error)


def _succeeded_lines(batch: Batch, lines: list, vectors: np.ndarray) -> bytes:
    out, start = [], 0
    for number, custom_id, count in lines:
        data = [
            {"object": "embedding", "index": index, "embedding": vectors[start + index]}
            for index in range(count)
        ]
        start += count
        out.append(orjson.dumps(
            {
                "id": f"batch-{batch.pk}-line-{number}", "custom_id": custom_id,
                "response": {"status_code": 200, "body": {"object": "list", "data": data, "model": batch.model}},
                "error": None,
            },
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
        ))
    return b"".join(out)


def _failed_lines(batch: Batch, lines: list, error: str) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "id": f"batch-{batch.pk}-line-{number}", "custom_id": custom_id, "response": None,
                "error": {"code": "inference_failed", "message": error},
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for number, custom_id, _ in lines
    )


def output_npy(batch: Batch) -> Iterator[bytes]:
    """A ``.npy`` file of shape (texts, dim), little-endian float32: row i is the batch's text i
    (bad lines are not texts), NaN for texts without an embedding (their part failed, was
    cancelled or has not run yet). The header first, then the rows a part at a time."""
    dim = get_spec(batch.model).output_dim
    yield _npy_header(batch, dim)
    for _, text_count, _, request_id, status, _ in batch_parts(batch):
        vectors = None
        if status == RequestStatus.SUCCEEDED:
            vectors = results.embeddings_read(request_id=request_id)
        if vectors is None or vectors.shape != (text_count, dim):
            vectors = np.full((text_count, dim), np.nan, dtype=np.float32)
        yield np.ascontiguousarray(vectors, dtype="<f4").tobytes()


def npy_size(batch: Batch) -> int:
    """The ``.npy`` file's size in bytes (its Content-Length), known before any row is read."""
    dim = get_spec(batch.model).output_dim
    return len(_npy_header(batch, dim)) + 4 * dim * batch.text_count


def _npy_header(batch: Batch, dim: int) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (batch.text_count, dim)}
    )
    return header.getvalue()
