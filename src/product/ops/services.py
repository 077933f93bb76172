"""Operators' actions on every request a filter matches, through the same services as the
management commands (``request_requeue``, ``request_cancel``), each recorded as an
``OpsAction``: who, when, which filter, how many matched, how far it got, how many changed.

An action runs in a thread of the web process, in chunks that each record their progress, so the
page can show it moving. It walks the matches by id, re-reading the filter at every chunk, so a
request that stopped matching meanwhile (cancelled, already requeued) is left alone. If the web
process stops midway, the record stays ``running`` with what was done; running the same action
again does the rest, since what it already changed no longer matches.
"""

from __future__ import annotations

import json
import logging
import threading

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Now

from product.inference import jobs
from product.inference import services as inference
from product.inference.filters import RequestFilter
from product.inference.models import ACTIVE_STATUSES, FINAL_STATUSES, InferenceRequest, RequestStatus
from product.ops.models import FailureDismissal, OpsAction

logger = logging.getLogger(__name__)

CHUNK = 200
# Which requests each action can change, whatever else the filter says.
_ACTS_ON = {
    OpsAction.Kind.REQUEUE: FINAL_STATUSES,
    OpsAction.Kind.CANCEL: ACTIVE_STATUSES,
}


def targets(*, kind: str, request_filter: RequestFilter) -> QuerySet[InferenceRequest]:
    """The requests the action would change now: those the filter matches, in the statuses
    the action applies to (requeue: finished ones; cancel: queued or running ones)."""
    return request_filter.apply(InferenceRequest.objects.filter(status__in=_ACTS_ON[kind]))


def describe(request_filter: RequestFilter) -> str:
    """The filter in words, for the audit trail ("status=failed, model=…"; "everything")."""
    query = request_filter.query()
    return ", ".join(f"{name}={value}" for name, value in query.items())[:500] or "every request"


def action_start(*, user, kind: str, request_filter: RequestFilter, wait: bool = False) -> OpsAction:
    """Record the action and start it in a thread; ``wait`` runs it to the end first (for the
    management commands and tests). Returns the record, to follow its progress."""
    action = OpsAction.objects.create(
        kind=kind, by=user, filter=request_filter.query(), description=describe(request_filter),
        matched=targets(kind=kind, request_filter=request_filter).count(),
    )
    thread = threading.Thread(
        target=_run, args=(action.pk, kind, request_filter), name=f"ops-action-{action.pk}", daemon=True
    )
    thread.start()
    if wait:
        thread.join()
        action.refresh_from_db()
    return action


def _run(action_id: int, kind: str, request_filter: RequestFilter) -> None:
    act = inference.request_requeue if kind == OpsAction.Kind.REQUEUE else inference.request_cancel
    done = changed = 0
    last = 0
    try:
        while True:
            chunk = list(
                targets(kind=kind, request_filter=request_filter).filter(pk__gt=last).order_by("pk")[:CHUNK]
            )
            if not chunk:
                break
            for request in chunk:
                try:
                    act(request=request)
                    changed += 1
                except inference.RequestStateError:  # It changed meanwhile: leave it.
                    pass
                done += 1
            last = chunk[-1].pk
            OpsAction.objects.filter(pk=action_id).update(done=done, changed=changed)
        OpsAction.objects.filter(pk=action_id).update(
            done=done, changed=changed, state=OpsAction.State.DONE, finished_at=Now()
        )
    except Exception as error:
        logger.exception("operator action %s failed", action_id)
        OpsAction.objects.filter(pk=action_id).update(
            done=done, changed=changed, state=OpsAction.State.FAILED, error=str(error)[:2000],
            finished_at=Now(),
        )
    finally:
        connection.close()  # This thread's connection goes back to the pool.


def failures_dismiss(*, user, model: str, error_key: str) -> OpsAction:
    """Hide a failure group: its failures so far stop being shown (new ones show again)."""
    request_filter = RequestFilter(statuses=(RequestStatus.FAILED,), model=model, error_group=error_key)
    count = request_filter.apply(InferenceRequest.objects.all()).count()
    FailureDismissal.objects.create(model=model, error_key=error_key, by=user)
    return OpsAction.objects.create(
        kind=OpsAction.Kind.DISMISS, by=user, filter=request_filter.query(),
        description=describe(request_filter), matched=count, done=count, changed=count,
        state=OpsAction.State.DONE, finished_at=Now(),
    )


def queue_pause(*, user, model: str, reason: str = "") -> OpsAction:
    """Pause ``model``'s queue (runners finish what they hold and take no more), recorded."""
    jobs.pause_model(model=model, paused_by=user.get_username(), reason=reason)
    return _queue_action(user, OpsAction.Kind.PAUSE, model)


def queue_resume(*, user, model: str) -> OpsAction:
    """Resume ``model``'s queue; its runners wake at once. Recorded."""
    jobs.resume_model(model=model)
    return _queue_action(user, OpsAction.Kind.RESUME, model)


def _queue_action(user, kind: str, model: str) -> OpsAction:
    """The record of a pause or resume, counting the model's queued requests it concerns, and
    a note to the web processes, whose operations pages redraw."""
    request_filter = RequestFilter(statuses=(RequestStatus.QUEUED,), model=model)
    waiting = request_filter.apply(InferenceRequest.objects.all()).count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_notify(%s, %s)", [settings.INFERENCE_STATUS_CHANNEL, json.dumps({"queue": model})]
        )
    return OpsAction.objects.create(
        kind=kind, by=user, filter={"model": model}, description=f"model={model}",
        matched=waiting, done=waiting, changed=0, state=OpsAction.State.DONE, finished_at=Now(),
    )
