"""Each process imports only what it should, and production settings are safe."""

import os
import subprocess
import sys

from tests.support.processes import ROOT

WEB_IMPORTS = """
import pkgutil, importlib, sys
import django
django.setup()
from product.asgi import application
from django.urls import get_resolver
get_resolver().url_patterns  # imports every view module
import product
for module in pkgutil.walk_packages(product.__path__, "product."):
    if module.name not in ("product.devstack", "product.pytest_plugin"):
        importlib.import_module(module.name)
from product.inference.registry import REGISTRY
from django.template.loader import get_template
for spec in REGISTRY.values():  # Every model's spec and page fragments, as the web finds them.
    get_template(spec.inputs_template), get_template(spec.result_template)
heavy = sorted(name for name in ("torch", "transformers", "gpu_runner") if name in sys.modules)
print("HEAVY:", heavy)
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "product.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_the_web_process_never_imports_torch():
    result = run_python(WEB_IMPORTS)
    assert result.returncode == 0, result.stderr
    assert "HEAVY: []" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "product.settings"},
        capture_output=True, text=True,
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, "DEBUG": "0", "SECRET_KEY": "x" * 20 + "-production-grade-secret-key-0123456789",
             "ALLOWED_HOSTS": "example.com"},
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py with the tests' environment less SECRET_KEY, DEBUG and DATABASE_URL, plus
    ``env``."""
    unset = ("SECRET_KEY", "DEBUG", "DATABASE_URL")
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**environment, **env},
        capture_output=True, text=True,
    )


def test_manage_py_with_a_database_url_still_requires_a_secret_key():
    # A server is configured: this is not a bare checkout, so no local defaults apply.
    result = run_manage("check", DATABASE_URL=os.environ["DATABASE_URL"])
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_manage_py_with_debug_turned_off_takes_no_local_defaults():
    result = run_manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
