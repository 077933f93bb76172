import dataclasses
import json

from django.conf import settings
from django.core.management.base import BaseCommand

from product.inference import telemetry
from product.inference.durations import format_duration


class Command(BaseCommand):
    help = (
        "Show the queue: requests by model and status, the oldest waiting request's age, each "
        "model's depth (requests and inputs queued and running, its oldest queued request), "
        "Procrastinate jobs by queue and status, paused queues (who paused them, since when), "
        "throughput (requests finished per minute by model over the last 1, 5 and 15 minutes) "
        "and the runners with their last heartbeat and the jobs they are running."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", dest="as_json", action="store_true", help="Print JSON instead of tables.")

    def handle(self, *args, as_json: bool = False, **options):
        overview = telemetry.queue_overview()
        if as_json:
            age = overview["oldest_queued_age"]
            overview["oldest_queued_age"] = age.total_seconds() if age else None
            for row in overview["depth"]:
                age = row["oldest_queued_age"]
                row["oldest_queued_age"] = age.total_seconds() if age else None
            for runner in overview["runners"]:
                runner["heartbeat_age"] = runner["heartbeat_age"].total_seconds()
            overview["paused"] = [
                {**dataclasses.asdict(pause), "paused_for": pause.paused_for.total_seconds()}
                for pause in overview["paused"]
            ]
            self.stdout.write(json.dumps(overview, indent=2, default=str))
            return
        self._table("Requests", "model", overview["counts"])
        self.stdout.write(f"Oldest queued request: {format_duration(overview['oldest_queued_age'])}")
        self._depth(overview["depth"])
        self._table("Jobs", "queue_name", overview["jobs"])
        self._paused(overview["paused"])
        self._throughput(overview["throughput"])
        self._runners(overview["runners"])

    def _table(self, title: str, key: str, rows: list[dict]) -> None:
        self.stdout.write(title)
        self.stdout.write(f"  {key.split('_')[0]:<28} {'status':<10} {'count':>7}")
        for row in rows:
            self.stdout.write(f"  {row[key]:<28} {row['status']:<10} {row['n']:>7}")
        if not rows:
            self.stdout.write("  (none)")

    def _paused(self, pauses: list) -> None:
        if not pauses:
            self.stdout.write("Paused queues: none")
            return
        self.stdout.write("Paused queues (runners take none of their jobs until resume_queue)")
        self.stdout.write(f"  {'queue':<28} {'paused for':>10}  by, reason")
        for pause in pauses:
            why = f"{pause.paused_by}: {pause.reason}" if pause.reason else pause.paused_by
            self.stdout.write(
                f"  {pause.queue_name:<28} {format_duration(pause.paused_for):>10}  {why}"
            )

    def _depth(self, rows: list[dict]) -> None:
        self.stdout.write("Depth by model (requests, and their inputs in brackets)")
        self.stdout.write(f"  {'model':<32}{'queued':>16}{'running':>16}{'oldest queued':>16}")
        for row in rows:
            queued = f"{row['queued']} ({row['queued_inputs']})"
            running = f"{row['running']} ({row['running_inputs']})"
            oldest = format_duration(row["oldest_queued_age"])
            self.stdout.write(f"  {row['model']:<32}{queued:>16}{running:>16}{oldest:>16}")

    def _throughput(self, rows: list[dict]) -> None:
        windows = telemetry.THROUGHPUT_WINDOWS_MINUTES
        self.stdout.write("Throughput (requests finished per minute; failed ones in brackets)")
        heading = "".join(f"{f'last {m}m':>16}" for m in windows)
        self.stdout.write(f"  {'model':<28}{heading}")
        by_model: dict[str, dict[int, dict]] = {}
        for row in rows:
            by_model.setdefault(row["model"], {})[row["minutes"]] = row
        for model, by_window in by_model.items():
            cells = "".join(
                f"{by_window[m]['per_minute']:>9.2f} ({by_window[m]['failed']:>4})" for m in windows
            )
            self.stdout.write(f"  {model:<28}{cells}")
        if not rows:
            self.stdout.write("  (nothing finished in the last 15 minutes)")

    def _runners(self, rows: list[dict]) -> None:
        live = sum(1 for row in rows if row["live"])
        self.stdout.write(
            f"Runners ({live} live; stale after {settings.RUNNER_STALE_AFTER:g}s "
            "without a heartbeat)"
        )
        self.stdout.write(f"  {'id':>8} {'heartbeat':>12} {'jobs doing':>11}  state")
        for row in rows:
            age = format_duration(row["heartbeat_age"]) + " ago"
            state = "live" if row["live"] else "STALE"
            self.stdout.write(f"  {row['id']:>8} {age:>12} {row['doing']:>11}  {state}")
        if not rows:
            self.stdout.write("  (none)")
