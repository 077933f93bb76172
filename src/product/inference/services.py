"""Every write to an InferenceRequest, from the web and from the runner.

Each function is one transaction that keeps the request row, its Procrastinate job and the
live-status notification consistent. Runner-side writes are conditional on the row still being
run by that job, so a retried or cancelled job can never write a second, stale outcome.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import orjson
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import NOT_PROVIDED, Q
from django.db.models.functions import Now

from product.queue import jobs as queue_jobs
from product.queue import workers
from product.inference import jobs, results
from product.inference.models import (
    ACTIVE_STATUSES,
    IdempotencyKey,
    InferenceRequest,
    RequestStatus,
)
from product.inference.registry import get_spec
from product.quotas import services as quotas


TABLE = InferenceRequest._meta.db_table


class RequestStateError(Exception):
    """The request is not in a state that allows the action; the message says why."""


def _notify(request: InferenceRequest) -> None:
    """NOTIFY web processes of a status change; Postgres delivers it only if we commit."""
    payload = json.dumps({"id": request.pk, "owner": request.owner_id, "status": request.status})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [settings.INFERENCE_STATUS_CHANNEL, payload])


def _notifying(update: str, *, progress: bool = False) -> str:
    """``update`` (an ``UPDATE … RETURNING`` of request rows, with ``%(channel)s`` among its
    parameters) made to NOTIFY web processes of each row it changed, in the same statement:
    one round trip instead of two, and Postgres delivers the notes only if we commit."""
    return f"WITH changed AS ({update}) {_notes_of('changed', progress=progress)}"


def _notes_of(rows: str, *, progress: bool = False) -> str:
    """A SELECT of the request rows CTE ``rows`` gives (with ``id``, ``owner_id`` and ``status``)
    that NOTIFYs web processes of each, on ``%(channel)s``. A ``progress`` note also says how
    many inputs are done (``rows`` has ``items_done``), so a page showing the progress of a
    running request redraws although its status has not changed."""
    done = f", 'done', {rows}.items_done" if progress else ""
    return f"""
        SELECT {rows}.*,
               pg_notify(%(channel)s, json_build_object(
                   'id', {rows}.id, 'owner', {rows}.owner_id, 'status', {rows}.status{done})::text)
          FROM {rows}
    """


def _update_notifying(update: str, params: dict, *, progress: bool = False) -> list[tuple]:
    """Run ``update`` (``RETURNING r.id, …``) with its notes; the rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(
            _notifying(update, progress=progress),
            {**params, "channel": settings.INFERENCE_STATUS_CHANNEL},
        )
        return cursor.fetchall()


def request_submit(
    *, user: Any, model: str, raw_input: Any, priority: str | None = None, metered: bool = True
) -> InferenceRequest:
    """Validate input, write the request row and defer its job in one statement (so one
    transaction).

    ``priority`` is "interactive" or "bulk"; without one it follows the request's size
    (``jobs.choose_priority``). Raises ``specs.InputError`` (and writes nothing) when the
    model, input or priority is invalid, and ``quotas.LimitExceeded`` (nothing written either)
    when the user is over a limit (``product.quotas``). Not ``metered`` (a batch's parts):
    no token is taken from the user's submit bucket; the queued-texts limit still applies.
    """
    return _admit_and_create(
        user=user, metered=metered, **_validated(model=model, raw_input=raw_input, priority=priority)
    )


def _validated(*, model: str, raw_input: Any, priority: str | None) -> dict:
    spec = get_spec(model)
    texts = spec.parse_input(raw_input)
    priority = jobs.choose_priority(priority, len(texts))
    return {"model": spec.name, "texts": texts, "priority": priority}


def _admit_and_create(
    *, user: Any, model: str, texts: list, priority: str, metered: bool = True
) -> InferenceRequest:
    """One statement, so one transaction with no BEGIN or COMMIT round trip: the quota's
    admission (which reserves the request's id as ``admitted.id``), the job's defer, and the
    row's INSERT with its job id and NOTIFY. The web's CPU per one-text submit went from six
    round trips' worth to one's (bench/web_cost.py). Over a limit, LimitExceeded: nothing
    was written."""
    request = _unsaved_request(
        owner_id=user.pk, model=model, inputs=texts, item_count=len(texts), priority=priority,
    )
    defer, defer_params = jobs.defer_run_sql(
        model=model, priority=priority, source="admitted", request_id="admitted.id",
        owner="%(row_owner_id)s::bigint", texts="%(row_item_count)s::int",
    )
    insert, given, filled = _insert_statement()
    params = {
        f"row_{field.attname}": field.get_db_prep_save(getattr(request, field.attname), connection)
        for field in given
    }
    (row,) = quotas.submit_admit(
        user=user, texts=len(texts), metered=metered,
        then=f", job AS ({defer}), created AS ({insert}) {_notes_of('created')}",
        params={**params, **defer_params, "channel": settings.INFERENCE_STATUS_CHANNEL},
    )
    request.pk, request.job_id = row[0], row[1]
    for field, value in zip(filled, row[4:]):
        if hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        setattr(request, field.attname, value)
    request._state.adding, request._state.db = False, connection.alias
    return request


def _unsaved_request(**values: Any) -> InferenceRequest:
    """A new InferenceRequest of ``values`` (by attribute name), every other field at its
    default; built from positional values, Model.__init__'s fast path (keywords cost a
    twentieth of the submit's CPU)."""
    return InferenceRequest(*(
        values[field.attname] if field.attname in values else field.get_default()
        for field in InferenceRequest._meta.concrete_fields
    ))


@functools.cache
def _insert_statement() -> tuple[str, list, list]:
    """The request's INSERT for ``_admit_and_create``: its id from CTE ``admitted``, its job's
    from ``job``, every other column a parameter named ``row_<field>``; RETURNING ``id``,
    ``job_id``, ``owner_id``, ``status`` and the columns the database fills (``db_default``,
    generated columns).
    Also the fields given as parameters and those read back.

    Written out rather than ``objects.create``: the ORM's compiling of the INSERT cost more of
    the web's CPU than PostgreSQL spends running it."""
    fields = InferenceRequest._meta.concrete_fields
    from_ctes = {"id": "admitted.id", "job_id": "job.id"}
    filled = [field for field in fields if field.db_default is not NOT_PROVIDED or field.generated]
    written = [field for field in fields if field not in filled]
    given = [field for field in written if field.attname not in from_ctes]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in written)
    values = ", ".join(from_ctes.get(field.attname, f"%(row_{field.attname})s") for field in written)
    returning = "".join(f", r.{quote(field.column)}" for field in filled)
    insert = (
        f"INSERT INTO {TABLE} AS r ({columns}) SELECT {values} FROM admitted, job "
        f"RETURNING r.id, r.job_id, r.owner_id, r.status{returning}"
    )
    return insert, given, filled


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another body; the message says for what."""


def request_submit_idempotent(
    *, user: Any, key: str, body_digest: str, model: str, raw_input: Any,
    priority: str | None = None,
) -> tuple[InferenceRequest, bool]:
    """``request_submit`` at most once per ``key`` of ``user``: (the request, whether it was
    created now). A key seen within INFERENCE_IDEMPOTENCY_TTL hours with the same
    ``body_digest`` returns the request it created (without counting against the rate limit);
    with another digest it raises ``IdempotencyConflict``. An older key is replaced.

    The user's quota row is locked before the key is looked up, so two submits with one key
    take turns and the second finds the first's key: exactly one request is created."""
    submit = _validated(model=model, raw_input=raw_input, priority=priority)
    with transaction.atomic():
        quotas.quota_lock(user=user)
        existing = _idempotency_key(user=user, key=key)
        if existing is not None and not existing.expired:
            if existing.body_digest != body_digest:
                raise IdempotencyConflict(
                    f"Idempotency-Key {key!r} was already used with a different body (for "
                    f"request {existing.request_id}); send a new key for a new request."
                )
            return existing.request, False
        if existing is not None:
            existing.delete()
        request = _admit_and_create(user=user, **submit)
        IdempotencyKey.objects.create(owner=user, key=key, body_digest=body_digest, request=request)
    return request, True


def _idempotency_key(*, user: Any, key: str) -> IdempotencyKey | None:
    ttl = timedelta(hours=settings.INFERENCE_IDEMPOTENCY_TTL)
    return (
        IdempotencyKey.objects.filter(owner=user, key=key)
        .annotate(expired=Q(created_at__lte=Now() - ttl))
        .select_related("request")
        # A replay answers with the request's JSON, which shows none of these megabytes.
        .defer("request__inputs", "request__output", "request__traceback")
        .first()
    )


def _defer(request: InferenceRequest) -> int:
    """Defer the job that runs ``request``, carrying what fair intake orders it by."""
    return jobs.defer_run(
        request_id=request.pk, model=request.model, owner=request.owner_id,
        texts=request.item_count, priority=request.priority,
    )


class _Repointed(Exception):
    """The request was pointed at another job (requeued) while its job was being locked."""


def request_cancel(*, request: InferenceRequest) -> InferenceRequest:
    """Cancel a queued request, or abort a running one. Final requests cannot be cancelled.

    The request's job is locked before the request, the order the runner's take and finish
    keep, so a cancel racing them waits for them instead of deadlocking."""
    while True:
        try:
            return _cancel(request.pk)
        except _Repointed:
            continue  # Its job changed under us: lock the new one (the old lock is let go).


def _cancel(pk: int) -> InferenceRequest:
    with transaction.atomic():
        job_id = InferenceRequest.objects.filter(pk=pk).values_list("job_id", flat=True).get()
        if job_id is not None:
            queue_jobs.lock(job_id)
        request = InferenceRequest.objects.select_for_update().get(pk=pk)
        if request.job_id != job_id:
            raise _Repointed  # Rolls back to the savepoint, which releases the job's lock.
        if request.status not in ACTIVE_STATUSES:
            raise RequestStateError(f"request {request.pk} is already {request.status}.")
        if job_id is not None:
            jobs.cancel_job(job_id)
        # finished_at is PostgreSQL's now(), the clock of created_at and started_at.
        (row,) = _update_notifying(
            f"UPDATE {TABLE} AS r SET status = 'cancelled', finished_at = now() "
            "WHERE r.id = %(id)s RETURNING r.id, r.owner_id, r.status, r.finished_at",
            {"id": pk},
        )
        request.status = RequestStatus.CANCELLED
        request.finished_at = row[3]
    return request


def request_requeue(*, request: InferenceRequest) -> InferenceRequest:
    """Run a finished request again on a fresh job; its previous outcome is cleared."""
    with transaction.atomic():
        request = InferenceRequest.objects.select_for_update().get(pk=request.pk)
        if request.status in ACTIVE_STATUSES:
            raise RequestStateError(f"request {request.pk} is already {request.status}.")
        request.status = RequestStatus.QUEUED
        request.output = None
        request.error = request.traceback = ""
        request.items_done = 0
        request.started_at = request.finished_at = request.compute_ms = None
        request.job_id = _defer(request)
        request.save(
            update_fields=[
                "status", "output", "error", "traceback", "items_done", "started_at",
                "finished_at", "compute_ms", "job_id",
            ]
        )
        # Its next run writes them afresh (results: a running request has none).
        results.embeddings_delete(request_ids=[request.pk])
        _notify(request)
    return request


def request_run_again(*, user: Any, request: InferenceRequest) -> InferenceRequest:
    """A new request by ``user`` with the model, inputs and priority of their own failed or
    cancelled ``request``, submitted as any other (limits apply); the old one stays as it was.
    Raises PermissionDenied for another user's request and RequestStateError for one that is
    not failed or cancelled."""
    if request.owner_id != user.pk:
        raise PermissionDenied(f"request {request.pk} belongs to another user; only they may run it again.")
    if request.status not in (RequestStatus.FAILED, RequestStatus.CANCELLED):
        raise RequestStateError(
            f"request {request.pk} is {request.status}; only a failed or cancelled request can be run again."
        )
    return request_submit(
        user=user, model=request.model, raw_input=request.inputs, priority=request.priority
    )


def requests_requeue(*, requests: Iterable[InferenceRequest]) -> list[InferenceRequest]:
    """Requeue each request (one transaction each, so one conflict does not undo the rest)."""
    return [request_requeue(request=request) for request in requests]


# --- Runner-side writes ------------------------------------------------------------------------
# The runner calls these with every request that reached the same step together (one statement
# for many requests, notifying included), inside its own transaction where it has one. Each write
# is conditional on the request still being run by that job.


@dataclass(frozen=True)
class Claim:
    """A job's claim on the request it runs."""

    request_id: int
    job_id: int


@dataclass(frozen=True, eq=False)
class Outcome:
    """How a job's run of its request ended: an output, or an error for the user.

    ``output`` is the small JSON part of a result; ``embeddings``, an (n, dim) float32 array,
    is stored apart as pgvector rows (``product.inference.results``)."""

    request_id: int
    job_id: int
    status: str  # RequestStatus.SUCCEEDED or RequestStatus.FAILED
    output: dict | None = None
    embeddings: np.ndarray | None = None
    error: str = ""
    traceback: str = ""
    compute_ms: float | None = None
    input_tokens: int | None = None  # Its inputs' tokens as the model counted them.


def _claimed(claims: Iterable[Claim]) -> dict:
    claims = list(claims)
    return {
        "ids": [claim.request_id for claim in claims],
        "job_ids": [claim.job_id for claim in claims],
    }


@dataclass(frozen=True)
class Started:
    """What a runner needs of a request it started: whose it is, the model and the inputs."""

    request_id: int
    owner_id: int
    model: str
    inputs: list


def requests_start(*, claims: Iterable[Claim]) -> dict[int, Started]:
    """Mark requests running for their jobs; returns them by job id. A request that should not
    run (cancelled, deleted, or now owned by another job) is left out."""
    rows = _update_notifying(
        f"""
        UPDATE {TABLE} AS r
           SET status = 'running', started_at = now(), attempts = r.attempts + 1, items_done = 0
          FROM unnest(%(ids)s::bigint[], %(job_ids)s::bigint[]) AS c(id, job_id)
         WHERE r.id = c.id AND r.job_id = c.job_id AND r.status IN ('queued', 'running')
        RETURNING r.id, r.owner_id, r.status, r.job_id, r.model, r.inputs
        """,
        _claimed(claims),
    )
    return {
        job_id: Started(request_id, owner_id, model, _json(inputs))
        for request_id, owner_id, _, job_id, model, inputs, _ in rows  # (and the notify)
    }


def _json(value: Any) -> Any:
    """A jsonb column's value: Django's connection hands jsonb over as text."""
    return orjson.loads(value) if isinstance(value, str) else value


def requests_progress(*, progress: Iterable[tuple[Claim, int]]) -> None:
    """Record how many inputs of each running request are done."""
    progress = list(progress)
    if not progress:
        return
    _update_notifying(
        f"""
        UPDATE {TABLE} AS r
           SET items_done = GREATEST(r.items_done, p.done)
          FROM unnest(%(ids)s::bigint[], %(job_ids)s::bigint[], %(done)s::int[])
               AS p(id, job_id, done)
         WHERE r.id = p.id AND r.job_id = p.job_id AND r.status = 'running'
        RETURNING r.id, r.owner_id, r.status, r.items_done
        """,
        {**_claimed(claim for claim, _ in progress), "done": [done for _, done in progress]},
        progress=True,
    )


def requests_finish(*, outcomes: Iterable[Outcome]) -> set[int]:
    """Store results and errors; returns the ids written. A request no longer run by that job
    (cancelled, requeued) keeps what it has: only the requests this UPDATE finished get their
    embeddings written, in the same transaction (one binary COPY for all of them)."""
    outcomes = list(outcomes)
    if not outcomes:
        return set()
    records = [
        {
            "id": o.request_id, "job_id": o.job_id, "status": o.status, "output": o.output,
            "error": o.error, "traceback": o.traceback, "compute_ms": o.compute_ms,
            "input_tokens": o.input_tokens,
        }
        for o in outcomes
    ]
    with transaction.atomic(savepoint=False):
        rows = _update_notifying(
            f"""
            UPDATE {TABLE} AS r
               SET status = o.status, output = o.output, error = o.error,
                   traceback = o.traceback, compute_ms = o.compute_ms,
                   input_tokens = o.input_tokens, finished_at = now(),
                   items_done = CASE WHEN o.status = 'succeeded' THEN r.item_count
                                     ELSE r.items_done END
              FROM jsonb_to_recordset(%(records)s::jsonb) AS o(
                   id bigint, job_id bigint, status text, output jsonb, error text,
                   traceback text, compute_ms double precision, input_tokens int)
             WHERE r.id = o.id AND r.job_id = o.job_id AND r.status = 'running'
            RETURNING r.id, r.job_id, r.owner_id, r.status
            """,
            {"records": orjson.dumps(records).decode()},
        )
        finished = {(row[0], row[1]) for row in rows}
        results.embeddings_write(
            embeddings=(
                (o.request_id, o.embeddings) for o in outcomes
                if o.embeddings is not None and (o.request_id, o.job_id) in finished
            )
        )
    return {request_id for request_id, _ in finished}


def requests_release(*, job_ids: Iterable[int]) -> None:
    """Show the requests of jobs that went back to the queue (handed back by a stopping runner,
    or rescued from a dead one) as queued again."""
    _update_notifying(
        f"""
        UPDATE {TABLE} AS r
           SET status = 'queued', started_at = NULL, items_done = 0
         WHERE r.job_id = ANY(%(job_ids)s) AND r.status = 'running'
        RETURNING r.id, r.owner_id, r.status
        """,
        {"job_ids": list(job_ids)},
    )


def requests_fail_lost(*, job_ids: Iterable[int], error: str) -> int:
    """Fail the active requests of jobs that will not run again (their runner kept dying)."""
    rows = _update_notifying(
        f"""
        UPDATE {TABLE} AS r
           SET status = 'failed', error = %(error)s, finished_at = now()
         WHERE r.job_id = ANY(%(job_ids)s) AND r.status IN ('queued', 'running')
        RETURNING r.id, r.owner_id, r.status
        """,
        {"error": error, "job_ids": list(job_ids)},
    )
    return len(rows)


def requests_rescue(*, stalled_after: float, max_attempts: int) -> workers.Rescue:
    """Put the jobs of dead runners back in the queue, and fail the requests whose jobs have
    used all their attempts (a request that kills its runner every time must stop somewhere)."""
    with transaction.atomic(savepoint=False):
        rescue = workers.rescue_stalled(stalled_after=stalled_after, max_attempts=max_attempts)
        requests_release(job_ids=rescue.requeued)
        if rescue.failed:
            requests_fail_lost(
                job_ids=rescue.failed,
                error=(
                    f"this request was tried {max_attempts} times without finishing (its last "
                    "runner stopped responding); it will not be tried again"
                ),
            )
    return rescue
