from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from product.inference import selectors, services
from product.inference.durations import parse_duration
from product.inference.filters import RequestFilter
from product.inference.management.progress import ProgressBar
from product.inference.models import ACTIVE_STATUSES


class Command(BaseCommand):
    help = (
        "Cancel queued requests, and running ones (their runner is asked to abort the job): "
        "by id, or every active request matching --status, --model, --owner and --older-than. "
        "Finished requests are left alone. Each request is cancelled in its own transaction, "
        "so one that finishes meanwhile does not stop the rest. -v 2 lists each request."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="Request ids.")
        parser.add_argument(
            "--status", action="append", choices=[str(s) for s in ACTIVE_STATUSES], default=[],
            help="Only requests in this status (repeatable; default: queued and running).",
        )
        parser.add_argument("--model", help="Only requests for this model.")
        parser.add_argument("--owner", metavar="USERNAME", help="Only requests of this user.")
        parser.add_argument(
            "--older-than", type=parse_duration, metavar="DURATION",
            help="Only requests created before now minus this (e.g. 2h, 3d).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be cancelled; change nothing."
        )

    def handle(self, *args, ids, status, model, owner, older_than, dry_run, verbosity, **options):
        if not (ids or status or model or owner or older_than):
            raise CommandError(
                "name request ids, or select with --status, --model, --owner or --older-than."
            )
        if owner and not get_user_model().objects.filter(username=owner).exists():
            raise CommandError(f"no user named {owner!r}.")
        matching = list(
            selectors.requests_matching(
                RequestFilter(
                    ids=tuple(ids), statuses=tuple(status or sorted(map(str, ACTIVE_STATUSES))), model=model,
                    owner=owner, older_than=older_than,
                )
            )
        )
        left_out = sorted(set(ids) - {request.pk for request in matching})
        if left_out:  # Name what the ids did not reach: finished, filtered out, or missing.
            existing = list(selectors.requests_matching(RequestFilter(ids=tuple(left_out))))
            for request in existing:
                why = (
                    "it does not match the filters" if request.status in ACTIVE_STATUSES
                    else f"it is {request.status}"
                )
                self.stderr.write(f"request {request.pk}: skipped, {why}")
            for missing in sorted(set(left_out) - {request.pk for request in existing}):
                self.stderr.write(f"request {missing}: not found")

        if dry_run:
            for request in matching:
                self.stdout.write(
                    f"would cancel request {request.pk} ({request.model}, {request.status}, "
                    f"owner {request.owner_id})"
                )
            self.stdout.write(f"{len(matching)} request(s) would be cancelled (dry run).")
            return

        cancelled = {status: 0 for status in ACTIVE_STATUSES}
        skipped = 0
        with ProgressBar(self.stderr, len(matching), "cancelling") as progress:
            for request in matching:
                was = request.status
                try:
                    services.request_cancel(request=request)
                except services.RequestStateError as error:  # Finished since it was selected.
                    skipped += 1
                    progress.echo(self.stderr.write, f"request {request.pk}: skipped, {error}")
                else:
                    cancelled[was] += 1
                    if verbosity >= 2:
                        verb = "aborted running" if was == "running" else "cancelled queued"
                        progress.echo(self.stdout.write, f"{verb} request {request.pk}")
                progress.advance()
        total = sum(cancelled.values())
        self.stdout.write(
            self.style.SUCCESS(
                f"{total} request(s) cancelled: {cancelled['queued']} queued, "
                f"{cancelled['running']} running (aborted); {skipped} skipped."
            )
        )
