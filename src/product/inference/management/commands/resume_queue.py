from django.core.management.base import BaseCommand, CommandError

from product.inference import jobs
from product.inference.durations import format_duration
from product.inference.registry import REGISTRY, get_spec
from product.inference.specs import InputError


class Command(BaseCommand):
    help = (
        "Resume a model's paused queue (see pause_queue): runners serving it are woken at once "
        "and take its waiting jobs again."
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help=f"Model name ({', '.join(sorted(REGISTRY))}).")

    def handle(self, *args, model: str, **options):
        try:
            pause = jobs.resume_model(model=model)
        except InputError as error:
            raise CommandError(str(error)) from None
        if pause is None:
            self.stdout.write(f"{get_spec(model).queue} was not paused.")
            return
        self.stdout.write(
            f"Resumed {pause.queue_name} (paused by {pause.paused_by} for "
            f"{format_duration(pause.paused_for)})."
        )
