"""The usage page: a user's own usage and limits; everyone's for those who see all requests."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from product.inference.selectors import sees_all_requests
from product.quotas import selectors


@login_required
def usage(request: HttpRequest) -> HttpResponse:
    context = {"own": selectors.usage_of(user=request.user), "everyone": None}
    if sees_all_requests(request.user):
        context["everyone"] = selectors.usage_of_everyone()
        context["list_limit"] = selectors.LIST_LIMIT
    return render(request, "quotas/usage.html", context)
