from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class OpsAction(models.Model):
    """One operator action on the requests a filter matched, as it runs and once done: who,
    when, which filter, how many matched and how many changed (the audit trail)."""

    class Kind(models.TextChoices):
        REQUEUE = "requeue", "Requeue"
        CANCEL = "cancel", "Cancel"
        DISMISS = "dismiss", "Dismiss failures"
        PAUSE = "pause", "Pause queue"
        RESUME = "resume", "Resume queue"

    class State(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    filter = models.JSONField(help_text="The filter's query-string parameters.")
    description = models.CharField(max_length=500, help_text="The filter, as the page said it.")
    matched = models.PositiveIntegerField(help_text="Requests the filter matched when it started.")
    done = models.PositiveIntegerField(default=0, help_text="Requests gone through so far.")
    changed = models.PositiveIntegerField(default=0, help_text="Requests it changed.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.matched} by {self.by_id}"


class FailureDismissal(models.Model):
    """Failures of ``model`` with the normalised error ``error_key`` that finished before
    ``dismissed_at`` are no longer shown among the failure groups (later ones are)."""

    model = models.CharField(max_length=200)
    error_key = models.TextField()
    dismissed_at = models.DateTimeField(db_default=Now())
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["model", "error_key", "-dismissed_at"], name="ops_dismissal_key")]
