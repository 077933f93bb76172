"""The OpenAI-compatible API, mounted at /v1/ (product.inference.openai_api)."""

from django.urls import path

from product.inference import openai_api

app_name = "openai"

urlpatterns = [
    path("embeddings", openai_api.embeddings, name="embeddings"),
    path("models", openai_api.model_list, name="models"),
    path("models/<str:model>", openai_api.model_detail, name="model"),
]
