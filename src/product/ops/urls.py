from django.urls import path

from product.ops import views

app_name = "ops"

urlpatterns = [
    path("", views.ops_page, name="page"),
    path("actions", views.ops_action, name="action"),
    path("failures/dismiss", views.failures_dismiss, name="failures_dismiss"),
    path("queues/pause", views.queue_pause, name="queue_pause"),
    path("queues/resume", views.queue_resume, name="queue_resume"),
]
