"""Requests and their queue: status notes, attempts, priorities, idempotency and each user's
limits."""

from __future__ import annotations

from product.env import env_bool, env_float, env_int, env_list, env_str

# Jobs are deferred through Django's own connection, so they commit with the request row.
PROCRASTINATE_READONLY_MODELS = True
# The channel the runner and the services NOTIFY on when a request changes; each web process
# LISTENs on it once, for the live-status streams.
INFERENCE_STATUS_CHANNEL = "inference_status"

# Packages whose folders are models (<package>/<model>/spec.py and runner.py), found at first
# use; installed distributions add more through the entry point group gpu_queue_product.models.
INFERENCE_MODEL_PACKAGES = env_list("INFERENCE_MODEL_PACKAGES", ["inference_models"])

# Runs a request's job gets before it fails for good: a transient error (database) or a lost
# runner (crash, kill) costs one; an input the model cannot run fails at once.
INFERENCE_MAX_ATTEMPTS = env_int("INFERENCE_MAX_ATTEMPTS", 3)
# A request that names no priority is interactive up to this many texts, bulk above
# (interactive work runs before bulk work; within each, users take turns).
INFERENCE_INTERACTIVE_MAX_TEXTS = env_int("INFERENCE_INTERACTIVE_MAX_TEXTS", 16)
# Hours an Idempotency-Key is kept: a retry within them returns the request the key made.
INFERENCE_IDEMPOTENCY_TTL = env_float("INFERENCE_IDEMPOTENCY_TTL", 24.0)
# Per-user limits (product.quotas; an operator overrides one user's in the admin). Texts of a
# user's queued and running requests, at most; and a token bucket of submits: BURST at once,
# refilled by SUBMITS_PER_MINUTE. A bulk client of 256-text requests lives well inside them.
INFERENCE_MAX_QUEUED_TEXTS = env_int("INFERENCE_MAX_QUEUED_TEXTS", 100_000)
INFERENCE_SUBMITS_PER_MINUTE = env_int("INFERENCE_SUBMITS_PER_MINUTE", 600)
INFERENCE_SUBMIT_BURST = env_int("INFERENCE_SUBMIT_BURST", INFERENCE_SUBMITS_PER_MINUTE)

# Batch jobs from files (product.batches). Texts one upload may hold, and the bytes its body may
# have (that endpoint's own limit in place of MAX_REQUEST_BODY_BYTES); Django spools an upload
# to FILE_UPLOAD_TEMP_DIR (the system's temporary directory when unset) while it is read.
BATCH_MAX_TEXTS = env_int("BATCH_MAX_TEXTS", 1_000_000)
BATCH_MAX_UPLOAD_BYTES = env_int("BATCH_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR")
# Parts (requests of up to a model's max_texts texts) of one batch queued or running at once;
# the feeder queues the next as parts finish, so a batch never floods the queue.
BATCH_QUEUED_PARTS = env_int("BATCH_QUEUED_PARTS", 8)
# Bad lines of a batch stored with their line numbers and messages (all are counted).
BATCH_MAX_LINE_ERRORS = env_int("BATCH_MAX_LINE_ERRORS", 1000)
# Whether this web process runs a batch feeder, and the seconds between its looks when no
# part's end wakes it.
BATCH_FEEDER = env_bool("BATCH_FEEDER", True)
BATCH_FEED_INTERVAL = env_float("BATCH_FEED_INTERVAL", 2.0)
