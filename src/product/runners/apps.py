from django.apps import AppConfig


class RunnersConfig(AppConfig):
    name = "product.runners"
    label = "runners"
    verbose_name = "Runners"
