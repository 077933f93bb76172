from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from product import api_errors, metrics
from product.accounts import views as account_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inference:request_list"), name="home"),
    path("accounts/login/", account_views.ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("requests/", include("product.inference.urls")),
    path("account/usage/", include("product.quotas.urls")),
    path("account/tokens/", include("product.accounts.urls")),
    path("batches/", include("product.batches.urls")),
    path("api/v1/", include("product.batches.api_urls")),
    path("api/", include("product.inference.api_urls")),
    # OpenAI-compatible, at the root as OpenAI's SDKs expect: base_url="http://host/v1".
    path("v1/", include("product.inference.openai_urls")),
    path("ops/", include("product.ops.urls")),
    path("search/", include("product.search.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics_view, name="metrics"),
]

# Errors under /api/ and /v1/ are JSON (product.api_errors), Django's pages elsewhere.
handler400 = api_errors.bad_request
handler403 = api_errors.permission_denied
handler404 = api_errors.page_not_found
handler500 = api_errors.server_error
