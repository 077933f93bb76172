from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "product.ops"
    label = "ops"
    verbose_name = "Operations"
