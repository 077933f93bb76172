from django.urls import path, re_path

from product.ops import views

app_name = "ops"

urlpatterns = [
    path("", views.ops_page, name="page"),
    path("actions", views.ops_action, name="action"),
    path("failures/dismiss", views.failures_dismiss, name="failures_dismiss"),
    re_path(r"^queues/(?P<change>pause|resume)$", views.queue_intake, name="queue_intake"),
]
