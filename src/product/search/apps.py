from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "product.search"
    label = "search"
    verbose_name = "Semantic search"
