-- Runners as Procrastinate workers: their rows, heartbeats, and the rescue of the jobs of
-- runners that died (product.queue.workers). Registering, unregistering and pruning go
-- through Procrastinate's own functions, so its CLI and admin see the same workers.

-- name: register_worker
SELECT worker_id FROM procrastinate_register_worker_v1();

-- name: unregister_worker
SELECT procrastinate_unregister_worker_v1(%(worker_id)s);

-- name: heartbeat
-- rowcount 0: the worker's row is gone (pruned as stalled).
UPDATE procrastinate_workers SET last_heartbeat = now() WHERE id = %(worker_id)s;

-- name: abort_requested
-- Which of these running jobs an operator asked to abort (the fallback for a missed NOTIFY).
SELECT id FROM procrastinate_jobs WHERE id = ANY(%(ids)s) AND abort_requested;

-- name: prune_stalled_workers
SELECT worker_id FROM procrastinate_prune_stalled_workers_v1(%(stalled_after)s);

-- fragment: stalled
-- A running job whose worker is gone, or has sent no heartbeat for ``stalled_after`` seconds
-- (jobs LEFT JOIN workers).
       jobs.status = 'doing'
   AND (workers.id IS NULL
        OR workers.last_heartbeat < now() - make_interval(secs => %(stalled_after)s))

-- name: stalled_jobs
SELECT jobs.id, jobs.queue_name, jobs.task_name, jobs.args, jobs.attempts, jobs.worker_id,
       now() - workers.last_heartbeat
  FROM procrastinate_jobs AS jobs
  LEFT JOIN procrastinate_workers AS workers ON workers.id = jobs.worker_id
 WHERE /* fragment: stalled */
 ORDER BY jobs.id;

-- name: rescue_stalled
-- A rescued job counts the lost run as an attempt and waits before its next one, so a job that
-- kills its runner every time stops after ``max_attempts`` runs instead of cycling. A job whose
-- n-th run was lost waits ``delays[n]`` seconds (1-based; the caller's Backoff computes them,
-- so every backoff in this product follows one formula), one entry per run up to
-- ``max_attempts``.
WITH stalled AS (
    SELECT jobs.id
      FROM procrastinate_jobs AS jobs
      LEFT JOIN procrastinate_workers AS workers ON workers.id = jobs.worker_id
     WHERE /* fragment: stalled */
       FOR UPDATE OF jobs SKIP LOCKED
)
UPDATE procrastinate_jobs AS jobs
   SET status = CASE WHEN jobs.attempts + 1 >= %(max_attempts)s OR jobs.abort_requested
                     THEN (CASE WHEN jobs.abort_requested THEN 'aborted' ELSE 'failed' END)
                          ::procrastinate_job_status
                     ELSE 'todo'::procrastinate_job_status END,
       attempts = jobs.attempts + 1,
       abort_requested = false,
       scheduled_at = CASE WHEN jobs.attempts + 1 >= %(max_attempts)s OR jobs.abort_requested
                           THEN jobs.scheduled_at
                           ELSE now() + make_interval(
                                    secs => (%(delays)s::float8[])[jobs.attempts + 1]) END
  FROM stalled
 WHERE jobs.id = stalled.id
RETURNING jobs.id, jobs.status::text, jobs.attempts;
