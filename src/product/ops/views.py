"""The operations page, for operators who see every request (``inference.view_inferencerequest``);
acting needs ``inference.change_inferencerequest``. Anyone else gets a 403."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from product.inference import selectors as requests
from product.inference.filters import RequestFilter, RequestFilterForm
from product.inference.registry import REGISTRY
from product.ops import selectors, services
from product.ops.charts import line_chart
from product.ops.models import OpsAction
from product.runners.selectors import runner_rows

SPANS = {"hour": (timedelta(hours=1), timedelta(minutes=1)), "day": (timedelta(days=1), timedelta(minutes=30))}


def _operator(view):
    """Sign-in required; a 403 for those who do not see every request."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not requests.sees_all_requests(request.user):
            raise PermissionDenied("The operations page is for operators who see every request.")
        return view(request, *args, **kwargs)

    return wrapper


def _acting(user) -> None:
    if not requests.changes_all_requests(user):
        raise PermissionDenied("Acting on others' requests needs inference.change_inferencerequest.")


@_operator
def ops_page(request: HttpRequest) -> HttpResponse:
    filters = RequestFilterForm(request.GET, sees_all=True)
    request_filter = filters.request_filter() if filters.is_valid() else RequestFilter()
    context = {
        "filters": filters, "filtered": bool(request_filter.query()),
        "matching": requests.request_page(user=request.user, request_filter=request_filter, limit=20),
        "query": request_filter.query(), "query_string": urlencode(request_filter.query()),
        **_live_context(),
    }
    if request.GET.get("partial") == "live":
        return render(request, "ops/_refresh.html", context)
    return render(request, "ops/ops.html", context)


def _live_context() -> dict:
    charts = {}
    for span, (window, bucket) in SPANS.items():
        buckets = selectors.activity(window=window, bucket=bucket)
        charts[span] = [
            line_chart([b.texts_per_second for b in buckets], title="Texts/s", unit="texts/s"),
            line_chart([b.requests_per_minute for b in buckets], title="Requests/min", unit="/min"),
            line_chart([b.wait_p50_seconds for b in buckets], title="Queue wait p50", unit="s"),
            line_chart([b.wait_p95_seconds for b in buckets], title="Queue wait p95", unit="s"),
            line_chart([b.failures for b in buckets], title="Failures", unit=""),
        ]
    queues = selectors.model_queues()
    paused = frozenset(queue.model for queue in queues if queue.pause is not None)
    return {
        "depth": selectors.queue_depth(),
        "queues": queues,
        "runners": runner_rows(paused_models=paused),
        "failures": selectors.failure_groups(),
        "actions": selectors.recent_actions(),
        "charts": charts,
    }


@_operator
@require_POST
def ops_action(request: HttpRequest) -> HttpResponse:
    """Requeue or cancel every request the posted filter matches: first the count that would
    change and a confirm button (a dry run), then, confirmed, the action."""
    _acting(request.user)
    kind = request.POST.get("kind")
    if kind not in (OpsAction.Kind.REQUEUE, OpsAction.Kind.CANCEL):
        messages.error(request, "Choose requeue or cancel.")
        return redirect("ops:page")
    filters = RequestFilterForm(request.POST, sees_all=True)
    if not filters.is_valid():
        messages.error(request, f"Not done: {filters.error_message()}")
        return redirect("ops:page")
    request_filter = filters.request_filter()
    if request.POST.get("confirm") != "yes":
        count = services.targets(kind=kind, request_filter=request_filter).count()
        context = {
            "kind": OpsAction.Kind(kind), "count": count, "query": request_filter.query(),
            "description": services.describe(request_filter),
        }
        return render(request, "ops/confirm.html", context)
    action = services.action_start(user=request.user, kind=kind, request_filter=request_filter)
    messages.info(request, f"{action.get_kind_display()} of {action.matched} request(s) started.")
    return redirect("ops:page")


@_operator
@require_POST
def failures_dismiss(request: HttpRequest) -> HttpResponse:
    _acting(request.user)
    action = services.failures_dismiss(
        user=request.user, model=request.POST.get("model", ""), error_key=request.POST.get("error_group", "")
    )
    messages.info(request, f"Dismissed {action.matched} failure(s).")
    return redirect("ops:page")


@_operator
@require_POST
def queue_intake(request: HttpRequest, change: str) -> HttpResponse:
    """Pause (``change`` "pause") or resume the posted model's queue."""
    _acting(request.user)
    model = _model(request)
    if change == "pause":
        services.queue_pause(user=request.user, model=model, reason=request.POST.get("reason", "")[:500])
        messages.info(request, f"Paused {model}: runners finish what they hold and take no more of it.")
    else:
        services.queue_resume(user=request.user, model=model)
        messages.info(request, f"Resumed {model}.")
    return redirect("ops:page")


def _model(request: HttpRequest) -> str:
    model = request.POST.get("model", "")
    if model not in REGISTRY:
        raise Http404(f"No model {model!r}.")
    return model
