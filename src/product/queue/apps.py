from django.apps import AppConfig


class QueueConfig(AppConfig):
    """The queue engine's own table: paused queues (``product.queue.pauses``)."""

    name = "product.queue"
    label = "queue"
    verbose_name = "Queue"
