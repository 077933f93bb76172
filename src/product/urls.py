from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from product import metrics
from product.inference import api

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="inference:request_list"), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("requests/", include("product.inference.urls")),
    path("api/", include("product.inference.api_urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics_view, name="metrics"),
]

handler404 = api.not_found
