from django.apps import AppConfig


class QuotasConfig(AppConfig):
    name = "product.quotas"
    label = "quotas"
    verbose_name = "Quotas and rate limits"
