"""The Kubernetes manifests keep up with the models: every registered model is hosted by
exactly one runner group (gpu-groups/<group>: a Deployment whose GPU_RUNNER_MODELS names its
models, or whose GPU_RUNNER_EXCLUDE_MODELS takes every model but those), and each group's KEDA
scaler counts the depth of the models it hosts. A model added later joins the default group
with no edit here."""

import re
from pathlib import Path

import yaml

from product.inference.registry import REGISTRY

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _groups() -> dict[str, dict[str, list[str]]]:
    """{Deployment name: {"GPU_RUNNER_MODELS": [...], "GPU_RUNNER_EXCLUDE_MODELS": [...]}}."""
    groups = {}
    for folder in sorted((KUBERNETES / "gpu-groups").iterdir()):
        [kustomization] = _load(folder / "kustomization.yaml")
        env = {}
        for patch in kustomization["patches"]:
            [container] = yaml.safe_load(patch["patch"])["spec"]["template"]["spec"]["containers"]
            env |= {item["name"]: item["value"].split(",") for item in container["env"]}
        groups["product-gpu" + kustomization["nameSuffix"]] = env
    return groups


def _hosted(env: dict[str, list[str]]) -> list[str]:
    """What a runner with this env hosts (gpu_runner.runtime.hosted_models' rule)."""
    names = env.get("GPU_RUNNER_MODELS") or list(REGISTRY)
    return [name for name in names if name not in env.get("GPU_RUNNER_EXCLUDE_MODELS", [])]


def test_every_group_is_deployed():
    [kustomization] = _load(KUBERNETES / "kustomization.yaml")
    groups = sorted(f"gpu-groups/{folder.name}" for folder in (KUBERNETES / "gpu-groups").iterdir())
    assert [r for r in kustomization["resources"] if r.startswith("gpu-groups/")] == groups


def test_every_registered_model_is_hosted_by_exactly_one_runner_group():
    groups = _groups()
    for env in groups.values():
        assert set(env.get("GPU_RUNNER_MODELS", [])) <= set(REGISTRY)
        assert set(env.get("GPU_RUNNER_EXCLUDE_MODELS", [])) <= set(REGISTRY)
    hosted = [model for env in groups.values() for model in _hosted(env)]
    assert sorted(hosted) == sorted(REGISTRY)


def test_each_group_scales_on_the_depth_of_the_models_it_hosts():
    groups = _groups()
    scaled = [doc for doc in _load(KUBERNETES / "gpu-keda-scaledobject.yaml") if doc["kind"] == "ScaledObject"]
    assert sorted(doc["spec"]["scaleTargetRef"]["name"] for doc in scaled) == sorted(groups)
    for doc in scaled:
        env = groups[doc["spec"]["scaleTargetRef"]["name"]]
        [trigger] = doc["spec"]["triggers"]
        negated, listed = re.search(r"model (NOT )?IN \(([^)]*)\)", trigger["metadata"]["query"]).groups()
        models = [name.strip().strip("'") for name in listed.split(",")]
        if negated:
            assert "GPU_RUNNER_MODELS" not in env and models == env["GPU_RUNNER_EXCLUDE_MODELS"]
        else:
            assert models == env["GPU_RUNNER_MODELS"] and "GPU_RUNNER_EXCLUDE_MODELS" not in env
