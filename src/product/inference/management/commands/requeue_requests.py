from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from product.inference import selectors, services
from product.inference.durations import parse_duration
from product.inference.filters import RequestFilter
from product.inference.management.progress import ProgressBar
from product.inference.models import FINAL_STATUSES, RequestStatus


class Command(BaseCommand):
    help = (
        "Run finished requests again on fresh jobs: by id, or every failed (or --status) request "
        "matching --model, --owner, --error-contains and age filters. Queued and running "
        "requests are left alone. Each request is requeued in its own transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Request ids.")
        parser.add_argument(
            "--failed", action="store_true", help="Select failed requests (same as --status failed)."
        )
        parser.add_argument(
            "--status", action="append", choices=[str(s) for s in FINAL_STATUSES], default=[],
            help="Select requests in this final status (repeatable).",
        )
        parser.add_argument("--model", help="Only requests for this model.")
        parser.add_argument("--owner", metavar="USERNAME", help="Only requests of this user.")
        parser.add_argument(
            "--error-contains", metavar="TEXT",
            help="Only requests whose error message contains TEXT (ignoring case).",
        )
        parser.add_argument(
            "--older-than", type=parse_duration, metavar="DURATION",
            help="Only requests created before now minus this (e.g. 2h).",
        )
        parser.add_argument(
            "--newer-than", type=parse_duration, metavar="DURATION",
            help="Only requests created within this (e.g. 30m).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would be requeued.")

    def handle(
        self, *args, ids, failed, status, model, owner, error_contains, older_than, newer_than,
        dry_run, **options,
    ):
        statuses = set(status) | ({RequestStatus.FAILED} if failed else set())
        if not ids and not statuses:
            raise CommandError("name request ids, or select with --failed or --status.")
        if owner and not get_user_model().objects.filter(username=owner).exists():
            raise CommandError(f"no user named {owner!r}.")
        matching = selectors.requests_matching(
            RequestFilter(
                ids=tuple(ids), statuses=tuple(sorted(statuses)), model=model, owner=owner,
                error_contains=error_contains, older_than=older_than, newer_than=newer_than,
            )
        )
        found = {request.pk for request in matching}
        for missing in sorted(set(ids) - found):
            self.stderr.write(f"request {missing}: not found")
        active = [r for r in matching if r.status not in FINAL_STATUSES]
        for request in active:
            self.stderr.write(f"request {request.pk}: skipped, it is {request.status}")
        chosen = [r for r in matching if r.status in FINAL_STATUSES]
        if dry_run:
            for request in chosen:
                self.stdout.write(f"would requeue request {request.pk} ({request.model}, {request.status})")
            self.stdout.write(f"{len(chosen)} request(s) would be requeued (dry run).")
            return
        requeued = 0
        with ProgressBar(self.stderr, len(chosen), "requeueing") as progress:
            for request in chosen:
                try:
                    request = services.request_requeue(request=request)
                except services.RequestStateError as error:  # Requeued by someone meanwhile.
                    progress.echo(self.stderr.write, f"request {request.pk}: skipped, {error}")
                else:
                    requeued += 1
                    progress.echo(
                        self.stdout.write, f"requeued request {request.pk} as job {request.job_id}"
                    )
                progress.advance()
        self.stdout.write(self.style.SUCCESS(f"{requeued} request(s) requeued."))
