"""Fixtures the integration tests share: a user and her API credentials."""

from __future__ import annotations

import pytest


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def auth(alice, token_for) -> dict:
    """Django test client keyword arguments that authenticate as ``alice``'s API token."""
    return {"HTTP_AUTHORIZATION": token_for(alice)}
