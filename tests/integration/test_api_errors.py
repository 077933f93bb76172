"""Every error under /api/ is the API's JSON error, whatever layer made it, in production and
under DEBUG (where Django would answer with its technical HTML pages)."""

from __future__ import annotations

import logging

import pytest
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.http import require_GET

from product import urls as product_urls

pytestmark = pytest.mark.django_db

BOTH_MODES = pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])


# This module is the URLconf of the tests that need a view of their own under /api/: one that
# fails, one that refuses, one that takes GET only. The site's handlers come along with it.
def _failing_view(request):
    raise RuntimeError("a bug in a view")


def _refusing_view(request):
    raise PermissionDenied("only operators may do this.")


@require_GET
def _get_only_view(request):
    return HttpResponse("ok")


def _form_view(request):
    return HttpResponse(str(len(request.POST)))


urlpatterns = [
    path("api/test/fails", _failing_view),
    path("api/test/refuses", _refusing_view),
    path("api/test/get-only", _get_only_view),
    path("api/test/form", _form_view),
    *product_urls.urlpatterns,
]
handler400 = product_urls.handler400
handler403 = product_urls.handler403
handler404 = product_urls.handler404
handler500 = product_urls.handler500


def error_of(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


@BOTH_MODES
def test_more_query_fields_than_django_allows_get_a_json_400_naming_the_limit(
    client, auth, settings, debug
):
    settings.DEBUG = debug
    query = "&".join(f"f{i}=x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    response = client.get(f"/api/v1/requests?{query}", **auth)

    error = error_of(response, 400)
    assert error["code"] == "too_many_fields"
    assert str(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS) in error["message"]


@BOTH_MODES
def test_a_path_no_route_takes_gets_a_json_404(client, auth, settings, debug):
    settings.DEBUG = debug

    response = client.get("/api/v1/no-such-thing", **auth)

    error = error_of(response, 404)
    assert error == {"code": "not_found", "message": "no endpoint at /api/v1/no-such-thing."}


@BOTH_MODES
def test_a_missing_request_still_gets_the_views_own_json_404(client, auth, settings, debug):
    settings.DEBUG = debug

    response = client.get("/api/v1/requests/999999", **auth)

    assert error_of(response, 404)["message"] == "no request 999999."


@BOTH_MODES
def test_a_bug_in_a_view_gets_a_json_500_and_its_traceback_is_logged_once(
    auth, settings, caplog, debug
):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = __name__
    # A real client would never see the exception; the test client re-raises it unless told not to.
    client = Client(HTTP_X_FORWARDED_PROTO="https", raise_request_exception=False)

    with caplog.at_level(logging.ERROR):
        response = client.get("/api/test/fails", **auth)

    error = error_of(response, 500)
    assert error["code"] == "internal_error"
    assert "a bug in a view" not in error["message"]  # Internals stay in the log.
    tracebacks = [r for r in caplog.records if r.exc_info and "a bug in a view" in str(r.exc_info[1])]
    assert len(tracebacks) == 1


@BOTH_MODES
def test_a_refused_permission_gets_a_json_403_with_its_reason(client, settings, debug):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = __name__

    response = client.get("/api/test/refuses")

    assert error_of(response, 403) == {
        "code": "forbidden", "message": "only operators may do this."
    }


@BOTH_MODES
def test_a_method_a_view_refuses_gets_a_json_405_that_keeps_its_allow_header(
    client, settings, debug
):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = __name__

    response = client.post("/api/test/get-only")

    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert response["Allow"] == "GET"


@BOTH_MODES
def test_a_form_body_over_djangos_limit_gets_a_json_413(client, settings, debug):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = __name__
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = client.post("/api/test/form", data={"text": "x" * 2000})

    assert error_of(response, 413)["code"] == "too_large"


@BOTH_MODES
def test_pages_outside_the_api_keep_their_html_errors(client, settings, debug):
    settings.DEBUG = debug

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
