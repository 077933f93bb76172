"""The registry finds models rather than listing them: every folder of the packages in
INFERENCE_MODEL_PACKAGES with a spec.py defining SPEC, in folder order; a folder whose spec has
no SPEC, or two models of one name, stop it with a message naming the problem."""

import textwrap

import pytest

from product.inference.registry import ModelRegistry

SPEC_MODULE = """
from dataclasses import dataclass
from product.inference.specs import ModelSpec, check_texts, texts_schema

@dataclass(frozen=True, kw_only=True)
class ShoutSpec(ModelSpec):
    def parse_input(self, raw):
        return check_texts(raw, "input", max_texts=4, max_chars=10, model=self.name)

    def input_schema(self):
        return texts_schema(max_texts=4, max_chars=10)

SPEC = ShoutSpec(name="{name}", title="Shout", description="Upper case.",
                 implementation="{package}.shout.runner:ShoutModel")
"""


def _package(tmp_path, monkeypatch, name: str, folders: dict[str, str]) -> str:
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("")
    for folder, spec in folders.items():
        (root / folder).mkdir()
        (root / folder / "__init__.py").write_text("")
        (root / folder / "spec.py").write_text(textwrap.dedent(spec))
    (root / "not_a_model.py").write_text("")  # Modules beside the folders are no models.
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_folder_in_a_listed_package_is_a_model_after_the_shipped_ones(tmp_path, monkeypatch, settings):
    package = _package(tmp_path, monkeypatch, "more_models_a", {
        "shout": SPEC_MODULE.format(name="shout", package="more_models_a"),
    })
    settings.INFERENCE_MODEL_PACKAGES = ["inference_models", package]

    registry = ModelRegistry()

    assert list(registry)[-1] == "shout" and "all-minilm-l6-v2" in registry
    assert registry["shout"].parse_input("hey") == ["hey"]
    assert registry["shout"].queue == "model.shout"


def test_a_spec_module_without_a_spec_is_refused_by_name(tmp_path, monkeypatch, settings):
    package = _package(tmp_path, monkeypatch, "more_models_b", {"broken": "SPEK = None\n"})
    settings.INFERENCE_MODEL_PACKAGES = [package]

    with pytest.raises(TypeError, match=r"more_models_b\.broken\.spec\.SPEC must be a ModelSpec"):
        list(ModelRegistry())


def test_two_models_of_one_name_are_refused(tmp_path, monkeypatch, settings):
    package = _package(tmp_path, monkeypatch, "more_models_c", {
        "one": SPEC_MODULE.format(name="twice", package="more_models_c"),
        "two": SPEC_MODULE.format(name="twice", package="more_models_c"),
    })
    settings.INFERENCE_MODEL_PACKAGES = [package]

    with pytest.raises(ValueError, match="two models are named 'twice'"):
        list(ModelRegistry())


def test_an_installed_distribution_adds_a_model_through_its_entry_point(tmp_path, monkeypatch, settings):
    """The entry point group gpu_queue_product.models: each entry point names a ModelSpec."""
    from importlib.metadata import EntryPoint

    from product.inference import registry

    package = _package(tmp_path, monkeypatch, "more_models_d", {
        "shout": SPEC_MODULE.format(name="shout-installed", package="more_models_d"),
    })
    point = EntryPoint("shout", f"{package}.shout.spec:SPEC", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == point.group else [])
    settings.INFERENCE_MODEL_PACKAGES = ["inference_models"]

    assert list(ModelRegistry())[-1] == "shout-installed"
