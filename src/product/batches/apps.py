from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "product.batches"
    label = "batches"
    verbose_name = "Batch jobs"
