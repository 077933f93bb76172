"""Shared fixtures. The database is real PostgreSQL (embedded unless DATABASE_URL is set,
see product.pytest_plugin); queue, runner, web server and browser are real too."""

from __future__ import annotations

import shutil

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from product.accounts.services import token_create

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config, items):
    if CHROMIUM:
        return
    skip = pytest.mark.skip(
        reason="no Chromium found: install Debian's `chromium` to run the browser tests"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"browser tests: {'Chromium at ' + CHROMIUM if CHROMIUM else 'SKIPPED (no Chromium)'}"


@pytest.fixture(scope="session", autouse=True)
def collected_static():
    """Production static storage needs collectstatic's manifest, as a deploy would have."""
    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture
def client():
    """Django's test client, arriving over https through the proxy as production expects
    (SECURE_SSL_REDIRECT redirects plain http)."""
    return Client(HTTP_X_FORWARDED_PROTO="https")


@pytest.fixture
def make_user(django_user_model):
    """``make_user("ops", staff=True, perms=["inference.view_inferencerequest"])``: a user
    (password ``<name>-Secret-123``) with the given permissions ("app_label.codename")."""

    def make(
        username: str = "alice", *, staff: bool = False, superuser: bool = False,
        perms: list[str] = (),
    ):
        from django.contrib.auth.models import Permission

        user = django_user_model.objects.create_user(
            username=username,
            password=f"{username}-Secret-123",
            is_staff=staff or superuser,
            is_superuser=superuser,
        )
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return user

    return make


@pytest.fixture
def token_for():
    """Return a function giving the Authorization header value for a user."""

    def header(user) -> str:
        _, secret = token_create(user=user, name="test")
        return f"Bearer {secret}"

    return header


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    """Stop the web and runner processes a test started and left running (it failed before
    stopping them): a runner left behind would take the next tests' jobs. Processes of wider
    fixtures (``live_stack``) start before this and stay."""
    from tests.support import processes

    mark = len(processes.STARTED)
    yield
    for process in processes.STARTED[mark:]:
        process.terminate()
    del processes.STARTED[mark:]


@pytest.fixture
def clean_queue(transactional_db):
    """Procrastinate's tables are not flushed between transactional tests; empty them before
    (whatever an earlier test left) and after."""

    def empty() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE")

    empty()
    yield
    empty()


@pytest.fixture
def empty_queue(db):
    """Start from an empty queue whatever earlier tests committed (processes of end-to-end
    tests write outside any test transaction); the test's transaction rolls it all back."""
    from product.inference.models import InferenceRequest

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_events")
        cursor.execute("DELETE FROM procrastinate_periodic_defers")
        cursor.execute("DELETE FROM procrastinate_jobs")
        cursor.execute("DELETE FROM procrastinate_workers")
    InferenceRequest.objects.all().delete()


class Stack:
    def __init__(self, base_url, web, runner) -> None:
        self.base_url, self.web, self.runner = base_url, web, runner


@pytest.fixture(scope="module")
def live_stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real uvicorn web process and a real runner process hosting every model, on the test
    database."""
    from tests.support.processes import start_runner, start_web

    log_dir = tmp_path_factory.mktemp("stack")
    started = []
    try:
        with django_db_blocker.unblock():
            runner = start_runner(log_dir, GPU_RUNNER_MODELS="")  # Every registered model.
            started.append(runner)
            web, base_url = start_web(log_dir)
            started.append(web)
            runner.wait_for_output("taking jobs from")
        yield Stack(base_url, web, runner)
    finally:
        for process in reversed(started):
            process.terminate()

