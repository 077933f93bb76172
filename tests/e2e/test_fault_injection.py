"""Nothing is lost, nothing runs twice: real runner processes are killed (SIGKILL) and stopped
(SIGTERM) in the middle of batches while hundreds of requests are served, on real PostgreSQL.

Each test prints its figures (runs, kills, requests, lost, duplicated, time to rescue)."""

from __future__ import annotations

import re
import time

import pytest
from django.db.models import Count, Q
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateEvent, ProcrastinateJob

from product.inference import results, services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support.processes import start_runner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]

# Fast failure detection for the test; production defaults are 5 s and 20 s.
FAST_RESCUE = {
    "GPU_RUNNER_HEARTBEAT_INTERVAL": "0.5",
    "GPU_RUNNER_STALLED_AFTER": "2",
    "INFERENCE_MAX_ATTEMPTS": "10",
    "GPU_RUNNER_CONCURRENCY": "16",
    "GPU_RUNNER_MAX_BATCH_SIZE": "16",
}
TEXTS = [f"Sentence {n} about queues, runners and the sea." for n in range(8)]


def submit(user, count: int) -> list[int]:
    return [
        services.request_submit(user=user, model=MINILM.name, raw_input=TEXTS).pk
        for _ in range(count)
    ]


def worker_id_of(runner) -> int:
    runner.wait_for_output("taking jobs from")
    return int(re.search(r"worker (\d+) taking jobs", runner.output()).group(1))


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


def all_final(ids) -> bool:
    return not InferenceRequest.objects.filter(pk__in=ids, finished_at__isnull=True).exists()


def check_every_request_ran_to_one_result(ids) -> dict:
    """Every request succeeded with its full output; its job succeeded exactly once."""
    requests = list(InferenceRequest.objects.filter(pk__in=ids))
    lost = [r.pk for r in requests if r.status != RequestStatus.SUCCEEDED]
    assert len(requests) == len(ids) and not lost, f"lost requests: {lost}"
    assert all(
        results.embeddings_read(request_id=r.pk).shape == (len(TEXTS), MINILM.output_dim)
        for r in requests
    )
    job_ids = [r.job_id for r in requests]
    assert set(ProcrastinateJob.objects.filter(id__in=job_ids).values_list("status", flat=True)) == {"succeeded"}
    finishes = (
        ProcrastinateEvent.objects.filter(job_id__in=job_ids, type="succeeded")
        .values("job_id").annotate(n=Count("id"))
    )
    duplicated = [row["job_id"] for row in finishes if row["n"] > 1]
    assert len(finishes) == len(ids) and not duplicated, f"jobs finished twice: {duplicated}"
    return {"requests": len(ids), "lost": len(lost), "duplicated": len(duplicated),
            "rerun": sum(r.attempts > 1 for r in requests)}


def test_runners_killed_mid_batch_lose_nothing_and_repeat_nothing(make_user, tmp_path, capsys):
    ids = submit(make_user("alice"), 400)
    # Three victims are killed one after the other while they hold jobs; the steady runner
    # takes one job at a time (so the victims hold most of the work), lives through every
    # kill, and rescues the victims' jobs.
    steady = start_runner(tmp_path, name="steady", **{**FAST_RESCUE, "GPU_RUNNER_CONCURRENCY": "1"})
    victims = [start_runner(tmp_path, name=f"victim-{n}", **FAST_RESCUE) for n in range(3)]
    kills = []  # (jobs the victim still held when it died, when it died)
    try:
        worker_id_of(steady)
        for victim in victims:
            worker = worker_id_of(victim)
            held = ProcrastinateJob.objects.filter(worker_id=worker, status="doing")
            wait_until(held.exists, 60, "the victim never held a job")
            time.sleep(0.3)  # Into its batches.
            victim.popen.kill()  # SIGKILL: no handler runs, nothing is handed back.
            victim.popen.wait()
            kills.append((list(held.values_list("id", flat=True)), timezone.now()))
        wait_until(lambda: all_final(ids), 240, "requests did not finish after the kills")
    finally:
        for process in [steady, *victims]:
            process.terminate()
    assert steady.popen.returncode == 0, steady.output()

    rescue_seconds = []
    for taken, killed_at in kills:
        back = ProcrastinateEvent.objects.filter(job_id__in=taken, type="deferred_for_retry", at__gt=killed_at)
        assert back.values("job_id").distinct().count() == len(taken), "a held job was not rescued"
        rescue_seconds.append((max(back.values_list("at", flat=True)) - killed_at).total_seconds())
    assert max(rescue_seconds) < 60
    figures = check_every_request_ran_to_one_result(ids)
    assert figures["rerun"] > 0, "no job was caught mid-run by a kill"
    assert "rescued jobs of stalled runners" in steady.output()
    with capsys.disabled():
        print(
            f"\n[fault injection] kill -9: runs 1, kills {len(kills)}, requests {figures['requests']}, "
            f"held at kill {[len(taken) for taken, _ in kills]}, rerun {figures['rerun']}, lost {figures['lost']}, "
            f"duplicated {figures['duplicated']}, time to rescue "
            + ", ".join(f"{s:.1f}" for s in rescue_seconds) + " s"
        )


def test_sigterm_under_load_hands_back_what_did_not_finish(make_user, tmp_path, capsys):
    ids = submit(make_user("alice"), 200)
    runner = start_runner(tmp_path, name="stopping", GPU_RUNNER_SHUTDOWN_GRACE="0.2", **FAST_RESCUE)
    worker = worker_id_of(runner)
    wait_until(
        lambda: InferenceRequest.objects.filter(pk__in=ids, status=RequestStatus.SUCCEEDED).exists(),
        60, "the runner never finished a request",
    )
    held = list(ProcrastinateJob.objects.filter(worker_id=worker, status="doing").values_list("id", flat=True))
    stopped_at = time.monotonic()
    try:
        assert runner.terminate() == 0, runner.output()
    finally:
        runner.popen.kill() if runner.popen.poll() is None else None
    stop_seconds = time.monotonic() - stopped_at

    # Handed back at once: nothing is left running, nothing waits for stall detection.
    assert not ProcrastinateJob.objects.filter(status="doing").exists()
    handed_back = ProcrastinateJob.objects.filter(
        Q(id__in=held), status="todo", attempts=0
    ).count()
    assert not InferenceRequest.objects.filter(pk__in=ids, status=RequestStatus.RUNNING).exists()

    second = start_runner(tmp_path, name="second", **FAST_RESCUE)
    try:
        wait_until(lambda: all_final(ids), 240, "requests did not finish after the restart")
    finally:
        second.terminate()
    assert second.popen.returncode == 0, second.output()
    figures = check_every_request_ran_to_one_result(ids)
    assert ProcrastinateJob.objects.filter(
        id__in=InferenceRequest.objects.filter(pk__in=ids).values("job_id"), attempts__gt=1
    ).count() == 0, "a handed-back job was counted as a failed attempt"
    with capsys.disabled():
        print(
            f"\n[fault injection] SIGTERM: runs 1, requests {figures['requests']}, held at stop "
            f"{len(held)}, handed back {handed_back}, stopped in {stop_seconds:.1f} s, "
            f"lost {figures['lost']}, duplicated {figures['duplicated']}"
        )
