-- What operators see of the queue (product.queue.telemetry: queue_status and the web's
-- /metrics). Each is one statement, cheap enough for every Prometheus scrape.

-- name: job_counts
-- Every job by queue and status, finished ones included (they stay until pruned).
SELECT queue_name, status, count(*) AS n
  FROM procrastinate_jobs
 GROUP BY queue_name, status
 ORDER BY queue_name, status;

-- name: job_counts_in
-- Jobs of some statuses by queue (queue depth: waiting and running).
SELECT queue_name, status, count(*) AS n
  FROM procrastinate_jobs
 WHERE status = ANY(%(statuses)s::procrastinate_job_status[])
 GROUP BY queue_name, status
 ORDER BY queue_name, status;

-- name: runners
-- Registered workers with the age of their heartbeat by the database's clock (the one the
-- stalled-job rule uses), whether it is younger than ``stale_after`` seconds, and the jobs
-- each is running.
SELECT workers.id,
       now() - workers.last_heartbeat AS heartbeat_age,
       count(jobs.id) AS doing,
       now() - workers.last_heartbeat <= make_interval(secs => %(stale_after)s) AS live
  FROM procrastinate_workers AS workers
  LEFT JOIN procrastinate_jobs AS jobs
         ON jobs.worker_id = workers.id AND jobs.status = 'doing'
 GROUP BY workers.id
 ORDER BY workers.id;

-- name: oldest_waiting_jobs
-- A waiting job has waited since it was deferred, or since the time it was scheduled for (a
-- retry). Ids grow with deferral, so the first unscheduled job per queue is the oldest of
-- those, and only its 'deferred' event is looked up rather than one per waiting job.
WITH ready AS (
    SELECT queue_name,
           min(id) FILTER (WHERE scheduled_at IS NULL) AS first_id,
           min(scheduled_at) AS first_scheduled
      FROM procrastinate_jobs
     WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())
     GROUP BY queue_name
)
SELECT ready.queue_name,
       EXTRACT(EPOCH FROM now() - LEAST(
           (SELECT min(at) FROM procrastinate_events
             WHERE job_id = ready.first_id AND type = 'deferred'),
           ready.first_scheduled))::float8
  FROM ready
 ORDER BY ready.queue_name;
