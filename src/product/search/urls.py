from django.urls import path

from product.search import views

app_name = "search"

urlpatterns = [
    path("", views.search_page, name="search"),
    path("collections/", views.collection_list, name="collection_list"),
    path("collections/sample", views.sample_add, name="sample_add"),
    path("collections/<int:collection_id>/", views.collection_detail, name="collection_detail"),
    path("collections/<int:collection_id>/delete", views.collection_delete, name="collection_delete"),
    path("documents/<int:document_id>/delete", views.document_delete, name="document_delete"),
]
