"""The batch API: upload a file, list and get batches (progress, ETA, bad lines), download the
results (JSONL, .npy), cancel. Bearer tokens and JSON errors as the rest of the API."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.urls import reverse

from product.batches import downloads, selectors, services
from product.batches.models import Batch
from product.inference.api import ApiError, api_view, query_int

MAX_LIST_LIMIT = 200


def batch_json(batch: Batch, *, with_errors: bool = False) -> dict:
    """A batch as the API shows it; ``with_errors``: and its stored bad lines."""
    progress = selectors.batch_progress(batch)
    data = {
        "id": batch.pk,
        "object": "batch",
        "url": reverse("batches_api:batch_detail", args=[batch.pk]),
        "page_url": reverse("batches:batch_detail", args=[batch.pk]),
        "model": batch.model,
        "filename": batch.filename,
        "owner": batch.owner.username,
        "status": batch.status,
        "created_at": batch.created_at.isoformat(),
        "finished_at": batch.finished_at.isoformat() if batch.finished_at else None,
        "lines": batch.line_count,
        "requests": batch.request_count,
        "texts": batch.text_count,
        "bad_lines": batch.bad_line_count,
        "progress": {
            "done": progress.done,
            "failed": progress.failed,
            "cancelled": progress.cancelled,
            "left": progress.left,
            "percent": round(progress.percent, 2),
            "texts_per_second": progress.texts_per_second,
            "eta_seconds": progress.eta_seconds,
            "parts": {
                "total": batch.part_count, "queued": progress.parts_queued,
                "running": progress.parts_running, "ended": progress.parts_done,
            },
        },
        "output_jsonl_url": reverse("batches_api:batch_output_jsonl", args=[batch.pk]),
        "output_npy_url": reverse("batches_api:batch_output_npy", args=[batch.pk]),
        "cancel_url": reverse("batches_api:batch_cancel", args=[batch.pk]),
    }
    if with_errors:
        data["line_errors"] = [
            {"line": line, "message": message} for line, message in selectors.batch_line_errors(batch)
        ]
        data["line_errors_stored_max"] = settings.BATCH_MAX_LINE_ERRORS
    return data


def _visible(request: HttpRequest, batch_id: int) -> Batch:
    try:
        return selectors.batch_get(user=request.user, batch_id=batch_id)
    except Batch.DoesNotExist:
        raise ApiError(404, "not_found", f"no batch {batch_id}.") from None


@api_view("GET", "POST")
def batches_collection(request: HttpRequest) -> JsonResponse:
    if request.method == "POST":
        return _upload(request)
    limit = query_int(request, "limit", default=50, low=1, high=MAX_LIST_LIMIT)
    before = query_int(request, "before", default=None, low=1)
    batches, next_before = selectors.batch_page(user=request.user, before=before, limit=limit)
    following = None
    if next_before is not None:
        following = request.build_absolute_uri(f"{request.path}?limit={limit}&before={next_before}")
    return JsonResponse({"results": [batch_json(batch) for batch in batches], "next": following})


def _upload(request: HttpRequest) -> JsonResponse:
    if not (request.content_type or "").startswith("multipart/form-data"):
        raise ApiError(
            415, "unsupported_media_type",
            "send the batch as multipart/form-data: the file in field 'file' (JSONL or one text "
            "a line), and optionally 'model'.",
        )
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError(400, "invalid_input", "field 'file' is required: the batch file (JSONL or one text a line).")
    model = request.POST.get("model") or None
    try:
        batch = services.batch_create(user=request.user, file=upload, filename=upload.name, model=model)
    except services.BatchRefused as error:
        raise ApiError(400, "invalid_input", str(error)) from None
    data = batch_json(batch, with_errors=True)
    response = JsonResponse(data, status=201)
    response["Location"] = data["url"]
    return response


@api_view("GET")
def batch_detail(request: HttpRequest, batch_id: int) -> JsonResponse:
    return JsonResponse(batch_json(_visible(request, batch_id), with_errors=True))


@api_view("POST")
def batch_cancel(request: HttpRequest, batch_id: int) -> JsonResponse:
    try:
        # PermissionDenied (another's batch, no change permission) is a JSON 403 (api_errors).
        batch = selectors.batch_get_for_change(user=request.user, batch_id=batch_id)
    except Batch.DoesNotExist:
        raise ApiError(404, "not_found", f"no batch {batch_id}.") from None
    try:
        batch = services.batch_cancel(batch=batch)
    except services.BatchStateError as error:
        raise ApiError(409, "conflict", str(error)) from None
    return JsonResponse(batch_json(batch))


def _download(body, *, content_type: str, filename: str, size: int | None = None) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if size is not None:
        response["Content-Length"] = str(size)
    return response


@api_view("GET")
def batch_output_jsonl(request: HttpRequest, batch_id: int) -> StreamingHttpResponse:
    """The results so far, one JSON line per input line of the parts that ended, streamed."""
    batch = _visible(request, batch_id)
    return _download(
        downloads.output_jsonl(batch), content_type="application/x-ndjson",
        filename=f"batch-{batch.pk}-output.jsonl",
    )


@api_view("GET")
def batch_output_npy(request: HttpRequest, batch_id: int) -> StreamingHttpResponse:
    """Every text's embedding in input order (NaN rows for texts without one), streamed."""
    batch = _visible(request, batch_id)
    return _download(
        downloads.output_npy(batch), content_type="application/octet-stream",
        filename=f"batch-{batch.pk}.npy", size=downloads.npy_size(batch),
    )
