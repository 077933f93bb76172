"""Server-rendered pages (sign-in required) and their live-status streams."""

from __future__ import annotations

import asyncio
import random
import weakref
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from product.inference import selectors, services
from product.inference.filters import RequestFilter, RequestFilterForm
from product.inference.forms import SubmitForm
from product.inference.live import StreamLimitReached, Subscription, hub, released
from product.inference.models import InferenceRequest
from product.inference.presenters import shown_request, sse_event
from product.inference.registry import REGISTRY
from product.inference.specs import InputError
from product.quotas.services import LimitExceeded


def _get_visible(request: HttpRequest, request_id: int) -> InferenceRequest:
    try:
        return selectors.request_get(user=request.user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        raise Http404("No such request.") from None


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    chosen = request.POST.get("model") if request.method == "POST" else request.GET.get("model")
    form = SubmitForm(request.POST or None, spec=SubmitForm.spec_for(chosen))
    status, retry_after = 200, None
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                created = services.request_submit(
                    user=request.user, model=form.cleaned_data["model"], raw_input=form.raw_input(),
                    priority=form.chosen_priority(),
                )
            except InputError as error:
                form.add_error(form.input_names[0], str(error))
            except LimitExceeded as limit:
                form.add_error(None, limit.message)
                if limit.retry_after is not None:
                    status, retry_after = 429, limit.retry_after
            else:
                return redirect("inference:request_detail", request_id=created.pk)
    context = {"form": form, "models": list(REGISTRY.values()), **_list_context(request)}
    if request.GET.get("partial") == "table":
        return render(request, "inference/_request_table.html", context)
    response = render(request, "inference/request_list.html", context, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _list_context(request: HttpRequest) -> dict:
    """The list's filter form, the page it selects, and the query strings of this page (for
    its live refresh) and of the next."""
    filters = RequestFilterForm(request.GET, sees_all=selectors.sees_all_requests(request.user))
    request_filter = filters.request_filter() if filters.is_valid() else RequestFilter()
    before = _cursor(request.GET.get("before"))
    page = selectors.request_page(user=request.user, request_filter=request_filter, before=before)
    query = request_filter.query()
    this_page = {**query, **({"before": before} if before is not None else {})}
    return {
        "filters": filters, "requests": page.requests, "filtered": bool(query),
        "this_page": urlencode(this_page),
        "next_page": None if page.next_before is None else urlencode({**query, "before": page.next_before}),
    }


def _cursor(value: str | None) -> int | None:
    """A list's ``before`` cursor; a malformed one starts from the first page."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


@login_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    row = _get_visible(request, request_id)
    context = {"req": row, **shown_request(row), "ahead": selectors.work_ahead(row)}
    if request.GET.get("partial") == "panel":
        return render(request, "inference/_request_panel.html", context)
    return render(request, "inference/request_detail.html", context)


@login_required
@require_POST
def request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    try:
        # PermissionDenied (another's request, no change permission) is the 403 page.
        row = selectors.request_get_for_change(user=request.user, request_id=request_id)
    except InferenceRequest.DoesNotExist:
        raise Http404("No such request.") from None
    try:
        services.request_cancel(request=row)
    except services.RequestStateError as error:
        messages.error(request, str(error))
    return redirect("inference:request_detail", request_id=row.pk)


@login_required
@require_POST
def request_run_again(request: HttpRequest, request_id: int) -> HttpResponse:
    row = _get_visible(request, request_id)
    try:
        again = services.request_run_again(user=request.user, request=row)
    except (services.RequestStateError, PermissionDenied) as error:
        messages.error(request, str(error))
    except LimitExceeded as limit:
        messages.error(request, limit.message)
    else:
        return redirect("inference:request_detail", request_id=again.pk)
    return redirect("inference:request_detail", request_id=row.pk)


# --- Live status (Server-Sent Events) ----------------------------------------------------------
# An open stream holds no database connection: each view reads what it needs in the request's
# own thread (sync_to_async is thread-sensitive, and under SyncChain the whole chain runs in that
# thread), closes that thread's connection, which hands it back to the psycopg pool, and only
# then streams, fed by the process's single LISTEN (product.inference.live).

# Milliseconds a browser waits before it reconnects a stream that ended (the SSE "retry" field).
_RECONNECT_MS = 1000


def _signed_in_viewer(request: HttpRequest):
    """(user, sees every request) for a signed-in user, else (None, False)."""
    user = request.user
    if not user.is_authenticated:
        return None, False
    return user, selectors.sees_all_requests(user)


def _viewer_and_request(request: HttpRequest, request_id: int):
    """(user, the request) for a signed-in user who may see it; (None, None) signed out."""
    user = request.user
    if not user.is_authenticated:
        return None, None
    return user, _get_visible(request, request_id)


class _EventStream:
    """The body of one stream. Django closes it with the response (in a worker thread), and a
    collected one closes too, so its subscription goes even when the body is never iterated."""

    def __init__(self, subscription: Subscription, initial: list[dict], wanted) -> None:
        self._subscription = subscription
        self._initial = initial
        self._wanted = wanted
        weakref.finalize(self, subscription.close)

    def __aiter__(self):
        return self._events()

    def close(self) -> None:
        self._subscription.close()

    async def _events(self):
        """The reconnect hint, the initial state, then every wanted notification with
        keep-alives, until the stream's maximum age: then the browser reconnects and re-reads."""
        subscription, loop = self._subscription, asyncio.get_running_loop()
        # Jittered: streams opened together (a deploy, a reconnect wave) do not end together.
        ends_at = loop.time() + settings.INFERENCE_STREAM_MAX_AGE * random.uniform(0.9, 1.0)
        try:
            yield f"retry: {_RECONNECT_MS}\n\n"
            for data in self._initial:
                yield sse_event(data)
            while (left := ends_at - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(left, settings.INFERENCE_STREAM_KEEPALIVE)):
                        message = await subscription.get()
                except TimeoutError:
                    if ends_at - loop.time() > 0:
                        yield ": keep-alive\n\n"
                    continue
                if message.get("resync"):
                    yield sse_event({}, event="resync")
                elif self._wanted(message):
                    yield sse_event(message)
        finally:
            subscription.close()


def _event_response(stream: _EventStream) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # Tell nginx-style proxies not to buffer the stream.
    return response


def _limit_response(limit: StreamLimitReached) -> HttpResponse:
    response = HttpResponse(str(limit), status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(limit.retry_after)
    return response


async def request_events(request: HttpRequest, request_id: int) -> HttpResponse:
    """Status changes of one request."""
    user, row = await released(_viewer_and_request)(request, request_id)
    if user is None:
        return HttpResponse("Sign in first.", status=401)
    try:
        subscription = await hub.subscribe(viewer=user.pk, owner=row.owner_id)
    except StreamLimitReached as limit:
        return _limit_response(limit)
    try:
        # Read the state to send first after subscribing: a change in between is not missed.
        row = await released(_get_visible)(request, request_id)
    except BaseException:
        subscription.close()
        raise
    initial = [{"id": row.pk, "owner": row.owner_id, "status": row.status}]
    return _event_response(_EventStream(subscription, initial, lambda m: m.get("id") == row.pk))


async def request_list_events(request: HttpRequest) -> HttpResponse:
    """Status changes of every request this user may see (``?include=runners``: and runners'
    reports)."""
    user, sees_all = await released(_signed_in_viewer)(request)
    if user is None:
        return HttpResponse("Sign in first.", status=401)
    try:
        subscription = await hub.subscribe(viewer=user.pk, owner=None if sees_all else user.pk)
    except StreamLimitReached as limit:
        return _limit_response(limit)
    # The hub routes only this user's changes here (everyone's when they see all), and runners'
    # reports (``{"runner": id}``, to those who see all) when asked: the operations page does.
    with_runners = request.GET.get("include") == "runners"
    return _event_response(
        _EventStream(subscription, [], lambda message: with_runners or "id" in message)
    )
