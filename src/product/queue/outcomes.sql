-- How runners end the jobs they took, many per statement (product.queue.outcomes).
--
-- Each statement is fenced: only jobs still running here change, so a job that was rescued
-- and taken by another runner meanwhile is left to that runner.

-- fragment: still_running_here
       jobs.status = 'doing'
   AND (jobs.worker_id = %(worker_id)s OR jobs.worker_id IS NULL)

-- name: finish
-- procrastinate_finish_job_v1 for many jobs.
UPDATE procrastinate_jobs AS jobs
   SET status = outcome.status::procrastinate_job_status,
       abort_requested = false,
       attempts = jobs.attempts + 1
  FROM unnest(%(ids)s::bigint[], %(statuses)s::text[]) AS outcome(id, status)
 WHERE jobs.id = outcome.id
   AND /* fragment: still_running_here */
RETURNING jobs.id;

-- name: retry
-- procrastinate_retry_job_v2 for many jobs, fenced like finish: a runner taken for dead whose
-- job was rescued meanwhile must not put that job back in the queue under its new runner. As
-- in Procrastinate, a job whose abort was asked for fails instead of waiting again.
UPDATE procrastinate_jobs AS jobs
   SET status = CASE WHEN jobs.abort_requested THEN 'failed'::procrastinate_job_status
                     ELSE 'todo'::procrastinate_job_status END,
       attempts = CASE WHEN jobs.abort_requested THEN jobs.attempts ELSE jobs.attempts + 1 END,
       scheduled_at = CASE WHEN jobs.abort_requested THEN jobs.scheduled_at
                           ELSE retry.retry_at END,
       priority = CASE WHEN jobs.abort_requested THEN jobs.priority
                       ELSE COALESCE(retry.priority, jobs.priority) END,
       queue_name = CASE WHEN jobs.abort_requested THEN jobs.queue_name
                         ELSE COALESCE(retry.queue, jobs.queue_name) END,
       lock = CASE WHEN jobs.abort_requested THEN jobs.lock ELSE COALESCE(retry.lock, jobs.lock) END
  FROM unnest(%(ids)s::bigint[], %(retry_at)s::timestamptz[], %(priorities)s::int[],
              %(queues)s::text[], %(locks)s::text[]) AS retry(id, retry_at, priority, queue, lock)
 WHERE jobs.id = retry.id
   AND /* fragment: still_running_here */
RETURNING jobs.id;

-- name: hand_back
-- A job handed back was not tried, so its attempts stay; one whose abort was asked for ends
-- aborted instead (Procrastinate forbids a waiting job with a pending abort).
UPDATE procrastinate_jobs AS jobs
   SET status = CASE WHEN abort_requested THEN 'aborted'::procrastinate_job_status
                     ELSE 'todo'::procrastinate_job_status END,
       abort_requested = false
 WHERE jobs.id = ANY(%(ids)s)
   AND /* fragment: still_running_here */
RETURNING jobs.id;
