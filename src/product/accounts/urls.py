from django.urls import path

from product.accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.token_list, name="tokens"),
    path("<int:token_id>/rename", views.token_rename, name="token_rename"),
    path("<int:token_id>/revoke", views.token_revoke, name="token_revoke"),
]
