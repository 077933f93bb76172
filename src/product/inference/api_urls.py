from django.urls import path

from product.inference import api
from product.search import api as search_api

app_name = "api"

urlpatterns = [
    path("openapi.json", api.openapi, name="openapi"),
    path("v1/models", api.model_list, name="model_list"),
    path("v1/usage", api.usage, name="usage"),
    path("v1/search", search_api.search, name="search"),
    path("v1/requests", api.requests_collection, name="requests"),
    path("v1/requests/<int:request_id>", api.request_detail, name="request_detail"),
    path("v1/requests/<int:request_id>/result", api.request_result, name="request_result"),
    path("v1/requests/<int:request_id>/result.npy", api.request_result_npy, name="request_result_npy"),
    path("v1/requests/<int:request_id>/cancel", api.request_cancel, name="request_cancel"),
    path("v1/requests/<int:request_id>/run-again", api.request_run_again, name="request_run_again"),
]
