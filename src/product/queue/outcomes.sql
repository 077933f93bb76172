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
