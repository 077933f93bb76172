"""Every model change ships with its migration: `makemigrations --check` finds nothing to write."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from product.quotas.models import UserQuota

pytestmark = pytest.mark.django_db  # makemigrations checks the applied history too.


def missing_migrations() -> str:
    """What `makemigrations --check --dry-run` would write; empty when the models match."""
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", verbosity=1, stdout=out)
    except SystemExit as exit_:  # --check exits 1 when a migration is missing.
        assert exit_.code == 1
        return out.getvalue()
    return ""


def test_every_model_change_has_its_migration():
    missing = missing_migrations()
    assert missing == "", f"run `manage.py makemigrations`:\n{missing}"


def test_the_check_sees_a_model_change_without_a_migration(monkeypatch):
    field = UserQuota._meta.get_field("submit_burst")
    monkeypatch.setattr(field, "help_text", "changed without a migration")
    assert "Alter field submit_burst on userquota" in missing_migrations()
