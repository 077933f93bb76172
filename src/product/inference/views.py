"""Server-rendered pages (sign-in required) and their live-status streams."""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from product.inference import selectors, services
from product.inference.forms import SubmitForm
from product.inference.live import hub
from product.inference.models import InferenceRequest
from product.inference.presenters import sse_event
from product.inference.specs import REGISTRY, InputError


def _get_visible(request: HttpRequest, request_id: int) -> InferenceRequest:
    try:
        return selectors.request_get(user=request.user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        raise Http404("No such request.") from None


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    form = SubmitForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                created = services.request_submit(
                    user=request.user, model=form.cleaned_data["model"], raw_input=form.texts(),
                    priority=form.chosen_priority(),
                )
            except InputError as error:
                form.add_error("text", str(error))
            else:
                return redirect("inference:request_detail", request_id=created.pk)
        status = 400
    context = {"form": form, "requests": selectors.request_list(user=request.user)}
    if request.GET.get("partial") == "table":
        return render(request, "inference/_request_table.html", context)
    return render(request, "inference/request_list.html", context, status=status)


@login_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    row = _get_visible(request, request_id)
    spec = REGISTRY.get(row.model)
    preview = spec.preview(row.inputs, row.output) if spec and row.output else None
    context = {"req": row, "preview": preview}
    if request.GET.get("partial") == "panel":
        return render(request, "inference/_request_panel.html", context)
    return render(request, "inference/request_detail.html", context)


@login_required
@require_POST
def request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    row = _get_visible(request, request_id)
    try:
        services.request_cancel(request=row)
    except services.RequestStateError as error:
        messages.error(request, str(error))
    return redirect("inference:request_detail", request_id=row.pk)


# --- Live status (Server-Sent Events) ----------------------------------------------------------


async def _stream(initial: list[dict], queue: asyncio.Queue, wanted) -> object:
    """Yield the initial state, then every matching notification, with keep-alives."""
    try:
        for data in initial:
            yield sse_event(data)
        while True:
            try:
                message = await asyncio.wait_for(
                    queue.get(), timeout=settings.INFERENCE_STREAM_KEEPALIVE
                )
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if message.get("resync"):
                yield sse_event({}, event="resync")
            elif wanted(message):
                yield sse_event(message)
    finally:
        hub.unsubscribe(queue)


def _event_response(stream) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # Tell nginx-style proxies not to buffer the stream.
    return response


async def request_events(request: HttpRequest, request_id: int) -> HttpResponse:
    """Status changes of one request."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("Sign in first.", status=401)
    get = sync_to_async(selectors.request_get)
    try:
        await get(user=user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        raise Http404("No such request.") from None
    # Subscribe, then read the state to send first: a change in between is not missed.
    queue = await hub.subscribe()
    try:
        row = await get(user=user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        hub.unsubscribe(queue)
        raise Http404("No such request.") from None
    initial = [{"id": row.pk, "owner": row.owner_id, "status": row.status}]
    return _event_response(_stream(initial, queue, lambda m: m.get("id") == row.pk))


async def request_list_events(request: HttpRequest) -> HttpResponse:
    """Status changes of every request this user may see."""
    user = await request.auser()
    if not user.is_authenticated:
        return HttpResponse("Sign in first.", status=401)
    queue = await hub.subscribe()
    if user.is_staff:
        wanted = lambda message: True  # noqa: E731
    else:
        wanted = lambda message: message.get("owner") == user.pk  # noqa: E731
    return _event_response(_stream([], queue, wanted))
