from django.urls import path

from product.batches import views

app_name = "batches"

# The paths uploads are POSTed to: their bodies may be up to BATCH_MAX_UPLOAD_BYTES
# (product.asgi gives them to product.body_limit; a test holds them to the URLconf).
UPLOAD_PATHS = ("/batches/", "/api/v1/batches")

urlpatterns = [
    path("", views.batch_list, name="batch_list"),
    path("<int:batch_id>/", views.batch_detail, name="batch_detail"),
    path("<int:batch_id>/cancel", views.batch_cancel, name="batch_cancel"),
]
