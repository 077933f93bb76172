"""The operations page: only operators see it; it shows the queue, activity, runners, failures
grouped by their normalised error and the audit trail; actions apply to every request a filter
matches, after a dry run that says how many, through the same services as the commands."""

from __future__ import annotations

import pytest

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from product.ops.models import OpsAction
from product.ops.selectors import failure_groups

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_queue")]


@pytest.fixture
def operator(make_user):
    return make_user("ops", staff=True, perms=["inference.view_inferencerequest", "inference.change_inferencerequest"])


def fail(request, error: str) -> None:
    InferenceRequest.objects.filter(pk=request.pk).update(
        status=RequestStatus.FAILED, error=error, started_at=request.created_at,
    )
    InferenceRequest.objects.filter(pk=request.pk).update(finished_at=InferenceRequest.objects.get(pk=request.pk).created_at)


def submit(user, text: str = "x", **kwargs):
    return services.request_submit(user=user, model=MINILM.name, raw_input=[text], **kwargs)


def test_only_operators_see_the_page(client, make_user):
    client.force_login(make_user("alice"))
    assert client.get("/ops/").status_code == 403
    client.force_login(make_user("staff-only", staff=True))
    assert client.get("/ops/").status_code == 403
    client.logout()
    assert client.get("/ops/").status_code == 302


def test_viewing_without_the_change_permission_shows_no_actions_and_refuses_them(client, make_user):
    viewer = make_user("viewer", staff=True, perms=["inference.view_inferencerequest"])
    client.force_login(viewer)
    page = client.get("/ops/").content.decode()
    assert "Operations" in page and 'id="requeue-matching"' not in page
    assert client.post("/ops/actions", {"kind": "requeue", "status": "failed"}).status_code == 403


def test_the_page_shows_depth_failures_grouped_and_runners(client, operator, make_user):
    alice = make_user("alice")
    submit(alice, priority="bulk")
    for n in (3, 7, 12):
        fail(submit(alice), f"input[{n}] has {n}000 characters")
    fail(submit(alice), "CUDA out of memory")
    client.force_login(operator)

    live = client.get("/ops/?partial=live").content.decode()

    assert "bulk" in live and 'id="queue-depth"' in live
    groups = {(g.error_key, g.count) for g in failure_groups()}
    assert groups == {("input[N] has N characters", 3), ("CUDA out of memory", 1)}
    assert "No runner has reported" in live
    assert live.count("<svg") == 10  # Five charts, for the last hour and the last day.


def test_requeue_all_matching_after_a_dry_run_and_it_is_audited(client, operator, make_user):
    alice = make_user("alice")
    failed = [submit(alice) for _ in range(5)]
    for request in failed[:4]:
        fail(request, "boom 1")
    other = submit(alice)  # Queued: a requeue leaves it.
    client.force_login(operator)

    dry = client.post("/ops/actions", {"kind": "requeue", "status": "failed", "error": "boom"})
    assert dry.status_code == 200 and "Requeue 4 requests?" in dry.content.decode()
    assert InferenceRequest.objects.filter(status=RequestStatus.FAILED).count() == 4  # Nothing yet.

    done = client.post("/ops/actions", {"kind": "requeue", "status": "failed", "error": "boom", "confirm": "yes"})
    assert done.status_code == 302
    action = _finished(OpsAction.objects.get())
    assert (action.kind, action.matched, action.done, action.changed, action.by) == ("requeue", 4, 4, 4, operator)
    assert action.description == "status=failed, error=boom"
    assert set(InferenceRequest.objects.values_list("status", flat=True)) == {RequestStatus.QUEUED}
    assert InferenceRequest.objects.get(pk=other.pk).job_id == other.job_id
    assert "status=failed, error=boom" in client.get("/ops/?partial=live").content.decode()


def test_a_failure_group_is_requeued_or_dismissed_whole(client, operator, make_user):
    alice = make_user("alice")
    for n in range(3):
        fail(submit(alice), f"timeout after {n} s")
    fail(submit(alice), "another thing")
    client.force_login(operator)
    (group,) = [g for g in failure_groups() if g.error_key == "timeout after N s"]

    client.post("/ops/failures/dismiss", {"model": group.model, "error_group": group.error_key})
    assert [g.error_key for g in failure_groups()] == ["another thing"]
    assert OpsAction.objects.get(kind="dismiss").matched == 3

    client.post("/ops/actions", {"kind": "requeue", "status": "failed", "model": MINILM.name,
                                 "error_group": "another thing", "confirm": "yes"})
    _finished(OpsAction.objects.get(kind="requeue"))
    assert InferenceRequest.objects.filter(status=RequestStatus.FAILED).count() == 3


def test_cancel_all_matching_one_owner(client, operator, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    for _ in range(3):
        submit(alice)
    bobs = submit(bob)
    client.force_login(operator)

    client.post("/ops/actions", {"kind": "cancel", "owner": "alice", "confirm": "yes"})

    assert _finished(OpsAction.objects.get()).changed == 3
    assert InferenceRequest.objects.filter(status=RequestStatus.CANCELLED).count() == 3
    assert InferenceRequest.objects.get(pk=bobs.pk).status == RequestStatus.QUEUED


def _finished(action: OpsAction, timeout: float = 30) -> OpsAction:
    import time

    deadline = time.monotonic() + timeout
    while action.state == OpsAction.State.RUNNING:
        assert time.monotonic() < deadline, "the action did not finish"
        time.sleep(0.05)
        action.refresh_from_db()
    return action


def test_pausing_and_resuming_a_models_queue_from_the_page(client, operator, make_user):
    from product.queue.pauses import paused_queues
    from product.runners.services import Report, runner_report

    runner_report(Report(
        worker_id=1, name="r1", host="h", pid=1, device="cpu", device_name="", memory_used_bytes=None,
        memory_total_bytes=None, model_names=[MINILM.name], jobs_held=0, texts_per_second=0,
        batches_per_second=0, draining=False,
    ))
    submit(make_user("alice"))
    client.force_login(operator)

    client.post("/ops/queues/pause", {"model": MINILM.name})
    assert [p.queue_name for p in paused_queues()] == [MINILM.queue]
    assert [p.paused_by for p in paused_queues()] == ["ops"]
    live = client.get("/ops/?partial=live").content.decode()
    assert 'class="resume-queue"' in live and 'state-paused">paused</span>' in live

    client.post("/ops/queues/resume", {"model": MINILM.name})
    assert paused_queues() == []
    kinds = [(a.kind, a.matched, a.by.username) for a in OpsAction.objects.order_by("id")]
    assert kinds == [("pause", 1, "ops"), ("resume", 1, "ops")]
    assert client.post("/ops/queues/pause", {"model": "nope"}).status_code == 404


def test_a_runners_state_follows_its_reports_and_the_pauses():
    from datetime import timedelta

    from django.db.models.functions import Now

    from product.runners.models import RunnerReport
    from product.runners.selectors import runner_rows
    from product.runners.services import Report, runner_report

    def report(worker_id: int, draining: bool = False) -> None:
        runner_report(Report(
            worker_id=worker_id, name=f"r{worker_id}", host="h", pid=worker_id, device="cpu",
            device_name="", memory_used_bytes=None, memory_total_bytes=None,
            model_names=[MINILM.name], jobs_held=0, texts_per_second=0, batches_per_second=0,
            draining=draining,
        ))

    report(1), report(2, draining=True), report(3)
    RunnerReport.objects.filter(worker_id=3).update(reported_at=Now() - timedelta(minutes=5))
    assert [row.state for row in runner_rows()] == ["live", "draining", "stale"]
    assert [row.state for row in runner_rows(paused_models=frozenset({MINILM.name}))][0] == "paused"
