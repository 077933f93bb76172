"""The batch pages (sign-in required): the list with its upload form, a batch's page with live
progress (the request list's stream, ``inference:request_list_events``), cancel."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from product.batches import selectors, services
from product.batches.forms import BatchUploadForm
from product.batches.models import Batch
from product.inference.registry import get_spec

# Bad lines shown on a batch's page (the API gives all that are stored).
SHOWN_LINE_ERRORS = 100


def _cursor(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    form = BatchUploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = services.batch_create(
                    user=request.user, file=upload, filename=upload.name, model=form.cleaned_data["model"],
                )
            except services.BatchRefused as error:
                form.add_error("file", str(error))
            else:
                return redirect("batches:batch_detail", batch_id=batch.pk)
    batches, next_before = selectors.batch_page(user=request.user, before=_cursor(request.GET.get("before")))
    rows = [(batch, selectors.batch_progress(batch)) for batch in batches]
    context = {"form": form, "rows": rows, "next_before": next_before, "max_texts": settings.BATCH_MAX_TEXTS}
    if request.GET.get("partial") == "table":
        return render(request, "batches/_batch_table.html", context)
    return render(request, "batches/batch_list.html", context, status=status)


@login_required
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    try:
        batch = selectors.batch_get(user=request.user, batch_id=batch_id)
    except Batch.DoesNotExist:
        raise Http404("No such batch.") from None
    context = {
        "batch": batch, "progress": selectors.batch_progress(batch),
        "line_errors": selectors.batch_line_errors(batch, limit=SHOWN_LINE_ERRORS),
        "part_texts": get_spec(batch.model).max_texts,
    }
    if request.GET.get("partial") == "panel":
        return render(request, "batches/_batch_panel.html", context)
    return render(request, "batches/batch_detail.html", context)


@login_required
@require_POST
def batch_cancel(request: HttpRequest, batch_id: int) -> HttpResponse:
    try:
        # PermissionDenied (another's batch, no change permission) is the 403 page.
        batch = selectors.batch_get_for_change(user=request.user, batch_id=batch_id)
    except Batch.DoesNotExist:
        raise Http404("No such batch.") from None
    try:
        services.batch_cancel(batch=batch)
    except services.BatchStateError as error:
        messages.error(request, str(error))
    return redirect("batches:batch_detail", batch_id=batch.pk)
