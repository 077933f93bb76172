"""Every model the product knows, found rather than listed.

A model is one folder in a models package: ``<package>/<model>/spec.py`` defines ``SPEC`` (a
``specs.ModelSpec``) and ``<package>/<model>/runner.py`` its runner half. The packages searched
are ``INFERENCE_MODEL_PACKAGES`` (``inference_models`` by default, this repository's); an
installed distribution can add models through the entry point group ``gpu_queue_product.models``
(each entry point names a ModelSpec). Only ``spec`` modules are imported, so finding the models
never imports torch.

The models are found on first use (settings are read then, not at import), in folder order.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, MutableMapping
from importlib.metadata import entry_points

from django.conf import settings

from product.inference.specs import InputError, ModelSpec

ENTRY_POINT_GROUP = "gpu_queue_product.models"


def discover() -> list[ModelSpec]:
    """The specs of every model folder of the configured packages, then of the entry points."""
    found: list[ModelSpec] = []
    for package_name in settings.INFERENCE_MODEL_PACKAGES:
        package = importlib.import_module(package_name)
        for folder in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name):
            if folder.ispkg:
                found.append(_spec_of(f"{package_name}.{folder.name}.spec"))
    found.extend(_checked(point.load(), point.value) for point in entry_points(group=ENTRY_POINT_GROUP))
    return found


def _spec_of(module_name: str) -> ModelSpec:
    module = importlib.import_module(module_name)
    return _checked(getattr(module, "SPEC", None), f"{module_name}.SPEC")


def _checked(spec: object, where: str) -> ModelSpec:
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"{where} must be a ModelSpec, not {type(spec).__name__}")
    return spec


class ModelRegistry(MutableMapping[str, ModelSpec]):
    """The registered specs by name, found on first use. Tests register their own models with
    ``registry[spec.name] = spec`` (or ``monkeypatch.setitem``)."""

    def __init__(self) -> None:
        self._specs: dict[str, ModelSpec] | None = None

    def _loaded(self) -> dict[str, ModelSpec]:
        if self._specs is None:
            specs: dict[str, ModelSpec] = {}
            for spec in discover():
                if spec.name in specs:
                    raise ValueError(f"two models are named {spec.name!r}")
                specs[spec.name] = spec
            self._specs = specs
        return self._specs

    def __getitem__(self, name: str) -> ModelSpec:
        return self._loaded()[name]

    def __setitem__(self, name: str, spec: ModelSpec) -> None:
        self._loaded()[name] = spec

    def __delitem__(self, name: str) -> None:
        del self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


REGISTRY = ModelRegistry()


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``; InputError naming the known models otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise InputError(f"unknown model {name!r}; known models: {known}.") from None


def default_model() -> str:
    """The model the form offers first: the first one found."""
    return next(iter(REGISTRY))
