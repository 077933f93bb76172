"""Liveness answered before any other middleware: probes come from the platform with the pod's
IP as Host (not in ALLOWED_HOSTS) and over plain http (not redirected to https)."""

from __future__ import annotations

from django.http import HttpResponse

LIVENESS_PATH = "/healthz"


class LivenessMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path == LIVENESS_PATH:
            return HttpResponse("ok", content_type="text/plain")
        return self.get_response(request)
