from django.core.management.base import BaseCommand, CommandError

from product.inference import retention
from product.inference.durations import format_duration, parse_duration
from product.inference.management.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Delete requests that finished (succeeded, failed or cancelled) more than --older-than "
        "ago, together with their finished Procrastinate jobs and those jobs' events. Queued "
        "and running requests, and jobs that wait or run, are never touched. Safe to run while "
        "the system serves traffic (e.g. daily from cron). Also deletes Idempotency-Keys older "
        "than INFERENCE_IDEMPOTENCY_TTL hours."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=parse_duration, metavar="DURATION", required=True,
            help="Delete what finished before now minus this (e.g. 30d, 12h).",
        )
        parser.add_argument(
            "--keep-failed", action="store_true",
            help="Keep failed requests (and their jobs), e.g. to investigate them.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=500,
            help="Requests deleted per transaction (default: 500).",
        )

    def handle(self, *args, older_than, keep_failed, dry_run, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        what = "finished" + (" (failed ones kept)" if keep_failed else "")
        age = format_duration(older_than)
        if dry_run:
            preview = retention.prune_preview(older_than=older_than, keep_failed=keep_failed)
            self.stdout.write(
                f"would delete {preview.requests} request(s) {what} more than {age} ago, "
                f"{preview.jobs} job(s) and {preview.events} job event(s) (dry run)."
            )
            return
        total = retention.prunable_requests(older_than=older_than, keep_failed=keep_failed).count()
        with ProgressBar(self.stderr, total, "pruning") as progress:
            pruned = retention.requests_prune(
                older_than=older_than, keep_failed=keep_failed, batch_size=batch_size,
                progress=lambda total: progress.update(total.requests),
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"deleted {pruned.requests} request(s) {what} more than {age} ago, "
                f"{pruned.jobs} job(s) and {pruned.events} job event(s)."
            )
        )
        keys = retention.idempotency_keys_prune()
        self.stdout.write(f"deleted {keys} expired idempotency key(s).")
