"""A real runner process, with the real model, leaves a paused model's requests queued and runs
them once the queue is resumed (operator commands: pause_queue, resume_queue)."""

import pytest
from django.core.management import call_command

from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from inference_models.sentence_embedding.spec import SPEC as MINILM
from tests.support.processes import run_drain

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_queue")]


def test_a_paused_models_requests_wait_until_it_is_resumed(make_user, tmp_path):
    request = services.request_submit(
        user=make_user("alice"), model=MINILM.name, raw_input="A man is eating food."
    )
    call_command("pause_queue", MINILM.name, "--reason", "test")

    # A draining runner runs every job it may take, then exits: it takes none of this one.
    drain = run_drain(tmp_path)
    assert drain.popen.returncode == 0, drain.output()
    assert f"queue {MINILM.queue} is paused (by " in drain.output()
    request.refresh_from_db()
    assert request.status == RequestStatus.QUEUED

    call_command("resume_queue", MINILM.name)
    drain = run_drain(tmp_path)
    assert drain.popen.returncode == 0, drain.output()
    assert InferenceRequest.objects.get(pk=request.pk).status == RequestStatus.SUCCEEDED
