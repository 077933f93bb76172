"""List running jobs whose runner is gone or silent, and put them back in the queue.

Every runner does this by itself every GPU_RUNNER_HEARTBEAT_INTERVAL seconds; this command is
for when no runner is alive to do it, or to look before acting (--dry-run).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from product.inference import services
from product.queue import workers


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--stalled-after", type=float, default=settings.GPU_RUNNER_STALLED_AFTER,
            help="Seconds without a heartbeat after which a runner is taken for dead "
            "(default: GPU_RUNNER_STALLED_AFTER, %(default)s).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the stalled jobs; change nothing."
        )

    def handle(self, *args, stalled_after: float, dry_run: bool, **options) -> None:
        stalled = workers.stalled_jobs(stalled_after=stalled_after)
        for job in stalled:
            silent = (
                f"silent {job.silent_for.total_seconds():.0f} s"
                if job.silent_for is not None else "runner gone"
            )
            self.stdout.write(
                f"job {job.id}  {job.task_name}  queue {job.queue}  args {job.args}  "
                f"attempts {job.attempts}  worker {job.worker_id or '-'} ({silent})"
            )
        if dry_run:
            self.stdout.write(f"{len(stalled)} stalled jobs; nothing changed (--dry-run).")
            return
        rescue = services.requests_rescue(
            stalled_after=stalled_after, max_attempts=settings.INFERENCE_MAX_ATTEMPTS
        )
        self.stdout.write(
            f"{len(rescue.requeued)} requeued, {len(rescue.failed)} failed (out of attempts), "
            f"{len(rescue.aborted)} aborted (cancelled while running)."
        )
