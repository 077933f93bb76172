from django.urls import path

from product.batches import api

app_name = "batches_api"

urlpatterns = [
    path("batches", api.batches_collection, name="batches"),
    path("batches/<int:batch_id>", api.batch_detail, name="batch_detail"),
    path("batches/<int:batch_id>/output.jsonl", api.batch_output_jsonl, name="batch_output_jsonl"),
    path("batches/<int:batch_id>/output.npy", api.batch_output_npy, name="batch_output_npy"),
    path("batches/<int:batch_id>/cancel", api.batch_cancel, name="batch_cancel"),
]
