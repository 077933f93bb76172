"""``python -m tests.support.runner_with_test_models``: the real runner entry point, with the tests'
models registered (a runner process only knows the models in ``registry.REGISTRY``)."""

import sys

from gpu_runner.__main__ import main
from product.inference.registry import REGISTRY
from tests.support import hanging_model

REGISTRY[hanging_model.SPEC.name] = hanging_model.SPEC

if __name__ == "__main__":
    sys.exit(main())
