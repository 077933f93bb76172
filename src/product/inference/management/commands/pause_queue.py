import getpass

from django.core.management.base import BaseCommand, CommandError

from product.inference import jobs
from product.inference.durations import format_duration
from product.inference.registry import REGISTRY
from product.inference.specs import InputError


class Command(BaseCommand):
    help = (
        "Pause a model's queue: runners take none of its jobs until `resume_queue MODEL`, and "
        "finish the ones they hold; requests are still accepted and wait. Records who paused "
        "it (--by, default the account running the command), when, and --reason. Pausing a "
        "paused queue keeps its first pause."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help=f"Model name ({', '.join(sorted(REGISTRY))}).")
        parser.add_argument("--by", default=None, help="Who pauses it (default: your account).")
        parser.add_argument("--reason", default="", help="Why, shown by queue_status.")

    def handle(self, *args, model: str, by: str | None, reason: str, **options):
        try:
            pause, added = jobs.pause_model(
                model=model, paused_by=by or getpass.getuser(), reason=reason
            )
        except InputError as error:
            raise CommandError(str(error)) from None
        if added:
            self.stdout.write(f"Paused {pause.queue_name} (by {pause.paused_by}).")
        else:
            self.stdout.write(
                f"{pause.queue_name} was already paused, by {pause.paused_by}, "
                f"{format_duration(pause.paused_for)} ago."
            )
