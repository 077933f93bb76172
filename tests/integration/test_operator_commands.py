"""Operator commands: requeue and cancel with filters, prune finished work, queue status.

Requests are put in each state the way the runner does it (services and the job table), and
each command runs against the real tables."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.db import connection
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from product.inference import services
from product.inference.management.progress import ProgressBar
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support.runners import register_runner

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("empty_queue")]


def run_command(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=out)
    return out.getvalue()


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def submit(user, text: str = "x") -> InferenceRequest:
    return services.request_submit(user=user, model=MINILM.name, raw_input=text)


def start(request: InferenceRequest, worker_id: int | None = None) -> InferenceRequest:
    """As a runner taking the job: the job is 'doing', the request running."""
    _sql("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s",
         [worker_id, request.job_id])
    services.requests_start(claims=[services.Claim(request.pk, request.job_id)])
    return InferenceRequest.objects.get(pk=request.pk)


def finish(request: InferenceRequest, status: str = "succeeded", error: str = "",
           finished_ago: timedelta | None = None) -> InferenceRequest:
    """As a runner finishing it: outcome on the row, the job finished too."""
    start(request)
    services.requests_finish(
        outcomes=[services.Outcome(request.pk, request.job_id, status, error=error,
                                   output={"n": 1} if status == "succeeded" else None)]
    )
    _sql("UPDATE procrastinate_jobs SET status = %s::procrastinate_job_status WHERE id = %s",
         [status, request.job_id])
    if finished_ago is not None:
        age_back(request, finished_ago)
    return InferenceRequest.objects.get(pk=request.pk)


def age_back(request: InferenceRequest, by: timedelta) -> None:
    then = timezone.now() - by
    InferenceRequest.objects.filter(pk=request.pk, finished_at__isnull=False).update(finished_at=then)
    InferenceRequest.objects.filter(pk=request.pk).update(created_at=then)


def status_of(request: InferenceRequest) -> str:
    return InferenceRequest.objects.get(pk=request.pk).status


# --- requeue_requests ------------------------------------------------------------------------


def test_requeue_selects_by_owner(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    mine, theirs = finish(submit(alice), "failed", "boom"), finish(submit(bob), "failed", "boom")

    out = run_command("requeue_requests", "--failed", "--owner", "alice")

    assert "1 request(s) requeued" in out
    assert status_of(mine) == RequestStatus.QUEUED
    assert status_of(theirs) == RequestStatus.FAILED


def test_requeue_selects_by_words_in_the_error(make_user):
    alice = make_user("alice")
    oom = finish(submit(alice), "failed", "CUDA out of memory while running the batch")
    other = finish(submit(alice), "failed", "input refused")

    dry = run_command("requeue_requests", "--failed", "--error-contains", "OUT OF MEMORY", "--dry-run")
    assert f"would requeue request {oom.pk}" in dry and f"request {other.pk} " not in dry
    assert "1 request(s) would be requeued" in dry

    run_command("requeue_requests", "--failed", "--error-contains", "out of memory")
    assert status_of(oom) == RequestStatus.QUEUED
    assert status_of(other) == RequestStatus.FAILED


def test_requeue_refuses_an_unknown_owner():
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("requeue_requests", "--failed", "--owner", "nobody")


# --- cancel_requests -------------------------------------------------------------------------


def test_cancel_by_id_cancels_a_queued_request_and_aborts_a_running_one(make_user):
    alice = make_user("alice")
    queued = submit(alice)
    running = start(submit(alice), worker_id=register_runner())
    not_named = submit(alice)

    out = run_command("cancel_requests", str(queued.pk), str(running.pk))

    assert "2 request(s) cancelled: 1 queued, 1 running (aborted); 0 skipped." in out
    assert f"request {not_named.pk}" not in out and status_of(not_named) == RequestStatus.QUEUED
    assert status_of(queued) == status_of(running) == RequestStatus.CANCELLED
    assert ProcrastinateJob.objects.get(id=queued.job_id).status == "cancelled"
    running_job = ProcrastinateJob.objects.get(id=running.job_id)
    assert running_job.status == "doing" and running_job.abort_requested  # The runner stops it.


def test_cancel_dry_run_changes_nothing(make_user):
    request = submit(make_user("alice"))

    out = run_command("cancel_requests", "--status", "queued", "--dry-run")

    assert f"would cancel request {request.pk}" in out
    assert "1 request(s) would be cancelled (dry run)." in out
    assert status_of(request) == RequestStatus.QUEUED
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "todo"


def test_cancel_filters_select_only_matching_active_requests(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    old_alice = submit(alice)
    age_back(old_alice, timedelta(hours=3))
    new_alice, old_bob = submit(alice), submit(bob)
    age_back(old_bob, timedelta(hours=3))
    done = finish(submit(alice), finished_ago=timedelta(hours=3))

    out = run_command("cancel_requests", "--owner", "alice", "--older-than", "2h")

    assert "1 request(s) cancelled" in out
    assert status_of(old_alice) == RequestStatus.CANCELLED
    assert status_of(new_alice) == status_of(old_bob) == RequestStatus.QUEUED
    assert status_of(done) == RequestStatus.SUCCEEDED
    assert "0 request(s) would" in run_command("cancel_requests", "--model", "other", "--dry-run")
    assert "1 request(s) would" in run_command("cancel_requests", "--status", "queued",
                                               "--owner", "bob", "--dry-run")


def test_cancel_names_ids_it_leaves_alone(make_user):
    done = finish(submit(make_user("alice")))
    bobs = submit(make_user("bob"))

    out = run_command("cancel_requests", str(done.pk), str(bobs.pk), "999999", "--owner", "alice")

    assert f"request {done.pk}: skipped, it is succeeded" in out
    assert f"request {bobs.pk}: skipped, it does not match the filters" in out
    assert "request 999999: not found" in out
    assert "0 request(s) cancelled" in out
    assert status_of(bobs) == RequestStatus.QUEUED


def test_cancel_needs_a_selection():
    with pytest.raises(CommandError, match="name request ids"):
        call_command("cancel_requests")


# --- prune_requests --------------------------------------------------------------------------


def _job_ids_of(request: InferenceRequest) -> list[int]:
    return list(
        ProcrastinateJob.objects.filter(args__request_id=request.pk).values_list("id", flat=True)
    )


def test_prune_deletes_old_finished_requests_with_all_their_jobs_and_events(make_user):
    alice = make_user("alice")
    month = timedelta(days=31)
    old_ok = finish(submit(alice), finished_ago=month)
    old_cancelled = submit(alice)
    services.request_cancel(request=old_cancelled)
    age_back(old_cancelled, month)
    # Failed, requeued, then succeeded: two jobs, both finished.
    retried = finish(submit(alice), "failed", "first try")
    retried = finish(services.request_requeue(request=retried), finished_ago=month)
    recent = finish(submit(alice), finished_ago=timedelta(days=2))
    old_queued = submit(alice)
    age_back(old_queued, month)
    doomed_jobs = [j for r in (old_ok, old_cancelled, retried) for j in _job_ids_of(r)]
    assert len(doomed_jobs) == 4
    doomed_events = ProcrastinateEvent.objects.filter(job_id__in=doomed_jobs).count()

    out = run_command("prune_requests", "--older-than", "30d")

    assert f"deleted 3 request(s) finished more than 720h00m ago, 4 job(s) and {doomed_events} job event(s)." in out
    assert not InferenceRequest.objects.filter(pk__in=[old_ok.pk, old_cancelled.pk, retried.pk]).exists()
    assert not ProcrastinateJob.objects.filter(id__in=doomed_jobs).exists()
    assert not ProcrastinateEvent.objects.filter(job_id__in=doomed_jobs).exists()
    assert status_of(recent) == RequestStatus.SUCCEEDED and _job_ids_of(recent)
    assert status_of(old_queued) == RequestStatus.QUEUED
    assert ProcrastinateJob.objects.get(id=old_queued.job_id).status == "todo"


def test_prune_dry_run_counts_and_deletes_nothing(make_user):
    old = finish(submit(make_user("alice")), finished_ago=timedelta(days=40))
    events = ProcrastinateEvent.objects.filter(job_id=old.job_id).count()

    out = run_command("prune_requests", "--older-than", "30d", "--dry-run")

    assert f"would delete 1 request(s) finished more than 720h00m ago, 1 job(s) and {events} job event(s) (dry run)." in out
    assert InferenceRequest.objects.filter(pk=old.pk).exists()
    assert ProcrastinateJob.objects.filter(id=old.job_id).exists()


def test_prune_can_keep_failed_requests(make_user):
    alice = make_user("alice")
    failed = finish(submit(alice), "failed", "kept for a post-mortem", finished_ago=timedelta(hours=13))
    succeeded = finish(submit(alice), finished_ago=timedelta(hours=13))

    out = run_command("prune_requests", "--older-than", "12h", "--keep-failed", "--batch-size", "1")

    assert "deleted 1 request(s) finished (failed ones kept)" in out
    assert status_of(failed) == RequestStatus.FAILED
    assert ProcrastinateJob.objects.filter(id=failed.job_id).exists()
    assert not InferenceRequest.objects.filter(pk=succeeded.pk).exists()


def test_prune_keeps_a_job_still_being_aborted(make_user):
    """A running request cancelled by its owner is final at once, but its runner has not yet
    stopped the job: the request may go, the live job must stay."""
    request = start(submit(make_user("alice")), worker_id=register_runner())
    services.request_cancel(request=request)
    age_back(request, timedelta(days=2))

    out = run_command("prune_requests", "--older-than", "1d")

    assert "deleted 1 request(s)" in out and "0 job(s)" in out
    assert ProcrastinateJob.objects.get(id=request.job_id).status == "doing"


def test_prune_needs_an_age():
    with pytest.raises(CommandError, match="--older-than"):
        call_command("prune_requests")


# --- queue_status ----------------------------------------------------------------------------


def test_queue_status_shows_each_model_s_depth(make_user):
    from product.inference.registry import REGISTRY

    alice = make_user("alice")
    submit(alice, ["a", "b", "c"])
    start(submit(alice, "d"))
    services.request_submit(user=alice, model="all-minilm-l6-v2-zero-shot",
                            raw_input={"texts": ["x", "y"], "labels": ["p", "q"]})

    out = run_command("queue_status")
    depth = {row["model"]: row for row in json.loads(run_command("queue_status", "--json"))["depth"]}

    assert "Depth by model" in out
    assert list(depth) == sorted(REGISTRY)
    assert (depth[MINILM.name]["queued"], depth[MINILM.name]["queued_inputs"]) == (1, 3)
    assert (depth[MINILM.name]["running"], depth[MINILM.name]["running_inputs"]) == (1, 1)
    assert depth["all-minilm-l6-v2-zero-shot"]["queued_inputs"] == 2
    assert depth["all-minilm-l6-v2-similarity"] == {
        "model": "all-minilm-l6-v2-similarity", "queued": 0, "queued_inputs": 0, "running": 0,
        "running_inputs": 0, "oldest_queued_age": None,
    }


def test_queue_status_shows_throughput_by_model_and_the_runners(make_user):
    alice = make_user("alice")
    live, stale = register_runner(heartbeat_age_s=2), register_runner(heartbeat_age_s=600)
    start(submit(alice), worker_id=live)
    for _ in range(3):
        finish(submit(alice), finished_ago=timedelta(minutes=2))
    finish(submit(alice), "failed", "x", finished_ago=timedelta(minutes=10))

    out = run_command("queue_status")
    data = json.loads(run_command("queue_status", "--json"))

    assert "Throughput" in out and MINILM.name in out
    assert "Runners (1 live" in out and "STALE" in out
    by_window = {row["minutes"]: row for row in data["throughput"] if row["model"] == MINILM.name}
    assert (by_window[1]["finished"], by_window[5]["finished"], by_window[15]["finished"]) == (0, 3, 4)
    assert by_window[5]["per_minute"] == 0.6 and by_window[15]["failed"] == 1
    runners = {row["id"]: row for row in data["runners"]}
    assert runners[live]["live"] and runners[live]["doing"] == 1
    assert not runners[stale]["live"] and runners[stale]["heartbeat_age"] == pytest.approx(600, abs=30)


# --- progress --------------------------------------------------------------------------------


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_only():
    terminal, pipe = OutputWrapper(_Terminal()), OutputWrapper(StringIO())
    for stream in (terminal, pipe):
        with ProgressBar(stream, total=4, label="pruning") as progress:
            progress.update(4)

    assert "pruning [" in terminal._out.getvalue() and "4/4 100%" in terminal._out.getvalue()
    assert pipe._out.getvalue() == ""
