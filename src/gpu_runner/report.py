"""What a runner reports of itself at each heartbeat, for the operations page
(``product.runners``): its name, host, device and memory in use, models, jobs held, and texts
and batches per second over the last minute."""

from __future__ import annotations

import os
import socket

import torch

from gpu_runner import metrics
from gpu_runner.runtime import Runtime
from product.runners.services import Report, runner_forget, runner_report


class Reporter:
    """Writes this runner's report (in the runner's database thread, at each heartbeat), and
    deletes it when the runner stops cleanly, so the page lists only runners that run or died."""

    def __init__(self, runtime: Runtime, name: str | None) -> None:
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.name = name or f"{self.host}:{self.pid}"
        self.device = runtime.device
        cuda = self.device.type == "cuda"
        self.device_name = (
            torch.cuda.get_device_name(self.device) if cuda else f"{torch.get_num_threads()} CPU threads"
        )
        self.memory_total = torch.cuda.get_device_properties(self.device).total_memory if cuda else None
        self.model_names = sorted(runtime.models)

    def report(self, *, worker_id: int, jobs_held: int, draining: bool) -> None:
        texts, batches = metrics.RECENT_BATCHES.rates()
        cuda = self.device.type == "cuda"
        runner_report(
            Report(
                worker_id=worker_id, name=self.name, host=self.host, pid=self.pid,
                device=self.device.type, device_name=self.device_name,
                memory_used_bytes=torch.cuda.memory_allocated(self.device) if cuda else None,
                memory_total_bytes=self.memory_total, model_names=self.model_names,
                jobs_held=jobs_held, texts_per_second=texts, batches_per_second=batches,
                draining=draining,
            )
        )

    def forget(self, *, worker_id: int) -> None:
        runner_forget(worker_id=worker_id)
