"""A template loader for the fragments each model keeps in its own folder.

``models/<model>/<file>`` is ``<file>`` in the ``templates`` folder of the spec registered as
``<model>`` (``ModelSpec.templates``), so a model's ``inputs.html`` and ``result.html`` live
beside its spec, not among the shared templates.
"""

from __future__ import annotations

from django.template import Origin, TemplateDoesNotExist
from django.template.loaders.base import Loader as BaseLoader
from django.utils._os import safe_join

from product.inference.registry import REGISTRY

PREFIX = "models/"


class Loader(BaseLoader):
    def get_template_sources(self, template_name: str):
        if not template_name.startswith(PREFIX):
            return
        model, _, file = template_name[len(PREFIX):].partition("/")
        spec = REGISTRY.get(model)
        if spec is None or spec.templates is None or not file:
            return
        yield Origin(name=safe_join(spec.templates, file), template_name=template_name, loader=self)

    def get_contents(self, origin: Origin) -> str:
        try:
            with open(origin.name, encoding=self.engine.file_charset) as file:
                return file.read()
        except FileNotFoundError:
            raise TemplateDoesNotExist(origin) from None
