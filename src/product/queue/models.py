"""The queue engine's one table of its own; every other table it uses is Procrastinate's."""

from django.db import models
from django.db.models.functions import Now


class PausedQueue(models.Model):
    """A queue runners take no new jobs from until it is resumed (``product.queue.pauses``).

    Procrastinate 3.10.0 has no pause of its own, so the runners' intake reads this table;
    its rows are written by ``pauses.pause`` and ``pauses.resume`` only."""

    queue_name = models.TextField(primary_key=True)
    # The database's clock, as every timestamp the queue compares.
    paused_at = models.DateTimeField(db_default=Now())
    # Who paused it: an operator's user name, or the account a command ran as.
    paused_by = models.TextField()
    reason = models.TextField(blank=True, db_default="")

    class Meta:
        db_table = "queue_paused_queues"

    def __str__(self) -> str:
        return self.queue_name
