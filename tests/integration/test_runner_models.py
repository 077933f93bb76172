"""Each runner chooses the models it hosts (GPU_RUNNER_MODELS): it loads only those and takes
only their jobs, so a fleet can give models, or groups of them, GPUs of their own."""

import pytest

from gpu_runner import runtime
from inference_models.sentence_embedding.spec import SPEC as EMBEDDINGS
from inference_models.sentence_similarity.spec import SPEC as SIMILARITY
from product.inference import services
from product.inference.models import InferenceRequest, RequestStatus
from tests.support.worker import drain

pytestmark = pytest.mark.usefixtures("clean_queue")


def test_a_runner_hosting_one_model_loads_it_alone_and_takes_only_its_jobs(settings, monkeypatch, make_user):
    settings.GPU_RUNNER_MODELS = [SIMILARITY.name]
    settings.GPU_RUNNER_MAX_BATCH_SIZE = 4
    settings.GPU_RUNNER_MAX_BATCH_TOKENS = 1024
    monkeypatch.setattr(runtime, "_current", None)
    hosted = runtime.load_runtime()
    alice = make_user("alice")
    pairs = services.request_submit(user=alice, model=SIMILARITY.name, raw_input=SIMILARITY.example_input())
    texts = services.request_submit(user=alice, model=EMBEDDINGS.name, raw_input="not for this runner")

    drain([spec.queue for spec in hosted.specs])

    assert list(hosted.models) == [SIMILARITY.name]
    assert InferenceRequest.objects.get(pk=pairs.pk).status == RequestStatus.SUCCEEDED
    assert InferenceRequest.objects.get(pk=texts.pk).status == RequestStatus.QUEUED


def test_an_unknown_hosted_model_stops_start_up(settings, monkeypatch):
    settings.GPU_RUNNER_MODELS = ["no-such-model"]
    monkeypatch.setattr(runtime, "_current", None)
    with pytest.raises(Exception, match="unknown model 'no-such-model'"):
        runtime.load_runtime()


def test_a_runner_can_host_every_model_but_those_excluded(settings):
    from gpu_runner.runtime import hosted_models
    from product.inference.registry import REGISTRY

    settings.GPU_RUNNER_MODELS = []
    settings.GPU_RUNNER_EXCLUDE_MODELS = [EMBEDDINGS.name]
    assert hosted_models() == [name for name in REGISTRY if name != EMBEDDINGS.name]
    settings.GPU_RUNNER_EXCLUDE_MODELS = list(REGISTRY)
    with pytest.raises(ValueError, match="hosts no model"):
        hosted_models()
