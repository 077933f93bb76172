"""Prometheus metrics of one runner process, served on GPU_RUNNER_METRICS_PORT.

Queue depth, live runners and request counts are the database's to tell and are served by the
web's /metrics; these are what only the runner sees: jobs, batches and the model's time."""

from __future__ import annotations

import collections
import threading
import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_TOKEN_BUCKETS = tuple(2**n for n in range(4, 21))

JOBS_TAKEN = Counter("gpuqueue_runner_jobs_taken_total", "Jobs this runner took from the queue.")
JOB_SECONDS = Histogram(
    "gpuqueue_runner_job_seconds", "Time from taking a job to recording its outcome.",
    ["task", "outcome"],
)
BATCH_SECONDS = Histogram(
    "gpuqueue_runner_batch_seconds", "Duration of one forward pass.", ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_ITEMS = Histogram(
    "gpuqueue_runner_batch_items", "Inputs in one forward pass.", ["model"], buckets=_SIZE_BUCKETS
)
BATCH_TOKENS = Histogram(
    "gpuqueue_runner_batch_tokens", "Real (non-padding) tokens in one forward pass.", ["model"],
    buckets=_TOKEN_BUCKETS,
)
BATCH_SPLITS = Counter(
    "gpuqueue_runner_batch_splits_total",
    "Batches split in two after an error (e.g. CUDA out of memory).", ["model"],
)
INPUT_FAILURES = Counter(
    "gpuqueue_runner_input_failures_total", "Inputs the model could not run.", ["model"]
)
HEARTBEAT = Gauge(
    "gpuqueue_runner_heartbeat_timestamp_seconds", "When this runner last recorded a heartbeat."
)


class RecentBatches:
    """Forward passes of the last ``window`` seconds, for the rates a runner reports to the
    operations page (texts/s and batches/s over the last minute). Any thread may record."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._batches: collections.deque[tuple[float, int]] = collections.deque()
        self._lock = threading.Lock()

    def record(self, inputs: int) -> None:
        with self._lock:
            self._batches.append((time.monotonic(), inputs))

    def rates(self) -> tuple[float, float]:
        """(inputs per second, batches per second) over the window."""
        since = time.monotonic() - self.window
        with self._lock:
            while self._batches and self._batches[0][0] < since:
                self._batches.popleft()
            inputs = sum(n for _, n in self._batches)
            batches = len(self._batches)
        return inputs / self.window, batches / self.window


RECENT_BATCHES = RecentBatches()


def serve(port: int) -> None:
    """Serve /metrics on ``port`` from a background thread."""
    start_http_server(port)
