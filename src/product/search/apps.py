from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "product.search"
    label = "search"
    verbose_name = "Semantic search"

    def ready(self) -> None:
        from product.inference.retention import before_prune

        before_prune.connect(_collect_before_prune, dispatch_uid="search.collect_before_prune")


def _collect_before_prune(**_) -> None:
    """Copy every succeeded indexing request's vectors into its chunks before retention
    deletes the requests (and their embedding rows) that hold them."""
    from product.search.services import chunks_collect

    chunks_collect(collection_ids=None)
