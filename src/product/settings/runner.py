"""The gpu runner: its models and device, batching, intake, and how it stays alive."""

from __future__ import annotations

from product.env import env_bool, env_float, env_int, env_list, env_str

# Models this runner hosts (comma-separated names; empty means every registered model).
GPU_RUNNER_MODELS = env_list("GPU_RUNNER_MODELS", [])
# Models this runner does not host, though GPU_RUNNER_MODELS (or its empty default) names them:
# a runner group for "every model but those with runners of their own".
GPU_RUNNER_EXCLUDE_MODELS = env_list("GPU_RUNNER_EXCLUDE_MODELS", [])
# "auto" picks CUDA when torch sees a GPU, else CPU.
GPU_RUNNER_DEVICE = env_str("GPU_RUNNER_DEVICE", "auto")
# "auto" is float16 on CUDA and float32 on CPU; or float32, float16, bfloat16.
GPU_RUNNER_DTYPE = env_str("GPU_RUNNER_DTYPE", "auto")
# Jobs one runner holds at once; inputs of jobs held together share forward passes.
GPU_RUNNER_CONCURRENCY = env_int("GPU_RUNNER_CONCURRENCY", 256)
# One forward pass holds at most this many inputs, and this many padded tokens
# (longest input × count). Warm-up runs the largest such batches, so a budget too big fails at start.
GPU_RUNNER_MAX_BATCH_SIZE = env_int("GPU_RUNNER_MAX_BATCH_SIZE", 64)
GPU_RUNNER_MAX_BATCH_TOKENS = env_int("GPU_RUNNER_MAX_BATCH_TOKENS", 4096)
# How long an idle model waits for more inputs to join the first one (milliseconds).
GPU_RUNNER_BATCH_WAIT_MS = env_float("GPU_RUNNER_BATCH_WAIT_MS", 2.0)
# Texts (summed over the jobs it holds) up to which a runner takes more bulk jobs: enough to fill
# its batches, little enough that the next user's job is not held up behind a backlog. The
# default is two of the batcher's windows (16 batches each): the jobs of one window end nearly
# together, so the next window's inputs must already be waiting. Interactive jobs are taken
# whenever a job slot is free.
GPU_RUNNER_MAX_HELD_TEXTS = env_int("GPU_RUNNER_MAX_HELD_TEXTS", 32 * GPU_RUNNER_MAX_BATCH_SIZE)
# Fair turns between users (fair intake and batching). 0 restores the old order (oldest work of
# all users first): only for comparing, e.g. in bench/fairness.py.
GPU_RUNNER_FAIR = env_bool("GPU_RUNNER_FAIR", True)
# Seconds a forward pass may take: one that does not return by then (a wedged GPU or driver)
# makes the runner hand back its jobs and exit non-zero, to be restarted. 0: no limit.
GPU_RUNNER_BATCH_TIMEOUT = env_float("GPU_RUNNER_BATCH_TIMEOUT", 120.0)
# Seconds a runner given SIGTERM lets held jobs finish before handing the rest back to the queue.
GPU_RUNNER_SHUTDOWN_GRACE = env_float("GPU_RUNNER_SHUTDOWN_GRACE", 20.0)
# Seconds between heartbeats (and checks for stalled jobs); a runner silent for STALLED_AFTER
# seconds is taken for dead and its jobs go back to the queue.
GPU_RUNNER_HEARTBEAT_INTERVAL = env_float("GPU_RUNNER_HEARTBEAT_INTERVAL", 5.0)
GPU_RUNNER_STALLED_AFTER = env_float("GPU_RUNNER_STALLED_AFTER", 20.0)
# Seconds between looks at the queue when no NOTIFY arrives (the LISTEN connection covers the rest).
GPU_RUNNER_POLL_INTERVAL = env_float("GPU_RUNNER_POLL_INTERVAL", 1.0)
# A file the runner touches at every heartbeat, for a liveness probe (empty: none).
GPU_RUNNER_HEARTBEAT_FILE = env_str("GPU_RUNNER_HEARTBEAT_FILE", "")
# The runner's name on the operations page (empty: host:pid).
GPU_RUNNER_NAME = env_str("GPU_RUNNER_NAME", "")
# Port of the runner's Prometheus /metrics (0: not served).
GPU_RUNNER_METRICS_PORT = env_int("GPU_RUNNER_METRICS_PORT", 0)
