from django.apps import AppConfig


class InferenceConfig(AppConfig):
    name = "product.inference"
    label = "inference"
    verbose_name = "Inference"
