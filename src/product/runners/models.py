from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now


class RunnerReport(models.Model):
    """A runner's latest report of itself, written at each heartbeat (``services``)."""

    # Procrastinate's id for the runner's worker row: a runner that re-registers after an
    # outage reports under its new id, and its old row goes stale.
    worker_id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=200, help_text="GPU_RUNNER_NAME, or host:pid.")
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    device = models.CharField(max_length=16, help_text="cuda or cpu.")
    device_name = models.CharField(max_length=255, blank=True)
    memory_used_bytes = models.BigIntegerField(null=True, blank=True)
    memory_total_bytes = models.BigIntegerField(null=True, blank=True)
    model_names = ArrayField(models.CharField(max_length=200), default=list, help_text="The models it hosts.")
    jobs_held = models.PositiveIntegerField(default=0)
    texts_per_second = models.FloatField(default=0, help_text="Over the last minute.")
    batches_per_second = models.FloatField(default=0, help_text="Over the last minute.")
    draining = models.BooleanField(default=False, help_text="Stopping: takes no new jobs.")
    started_at = models.DateTimeField(db_default=Now())
    reported_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name", "worker_id"]

    def __str__(self) -> str:
        return f"{self.name} (worker {self.worker_id})"
