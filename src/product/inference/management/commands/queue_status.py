import json

from django.core.management.base import BaseCommand

from product.inference import selectors
from product.inference.durations import format_duration


class Command(BaseCommand):
    help = (
        "Show the queue: requests by model and status, the oldest waiting request's age, and "
        "Procrastinate jobs by queue and status."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON instead of tables.")

    def handle(self, *args, as_json: bool = False, **options):
        overview = selectors.queue_overview()
        if as_json:
            age = overview["oldest_queued_age"]
            overview["oldest_queued_age"] = age.total_seconds() if age else None
            self.stdout.write(json.dumps(overview, indent=2, default=str))
            return
        self._table("Requests", "model", overview["counts"])
        self.stdout.write(f"Oldest queued request: {format_duration(overview['oldest_queued_age'])}")
        self._table("Jobs", "queue_name", overview["jobs"])

    def _table(self, title: str, key: str, rows: list[dict]) -> None:
        self.stdout.write(title)
        self.stdout.write(f"  {key.split('_')[0]:<28} {'status':<10} {'count':>7}")
        for row in rows:
            self.stdout.write(f"  {row[key]:<28} {row['status']:<10} {row['n']:>7}")
        if not rows:
            self.stdout.write("  (none)")
