from django.urls import path

from product.inference import views

app_name = "inference"

urlpatterns = [
    path("", views.request_list, name="request_list"),
    path("events", views.request_list_events, name="request_list_events"),
    path("<int:request_id>/", views.request_detail, name="request_detail"),
    path("<int:request_id>/events", views.request_events, name="request_events"),
    path("<int:request_id>/cancel", views.request_cancel, name="request_cancel"),
    path("<int:request_id>/run-again", views.request_run_again, name="request_run_again"),
]
