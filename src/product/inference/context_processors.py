"""What templates may show a signed-in user: the same operator rules as the selectors."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from product.inference import selectors


def operator_access(request: HttpRequest) -> dict:
    """``sees_all_requests`` and ``changes_all_requests`` for the current user, looked up only
    by a template that uses them."""
    user = getattr(request, "user", None)
    if user is None:
        return {}
    return {
        "sees_all_requests": SimpleLazyObject(lambda: selectors.sees_all_requests(user)),
        "changes_all_requests": SimpleLazyObject(lambda: selectors.changes_all_requests(user)),
    }
