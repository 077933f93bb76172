-- Deleting the finished jobs of deleted requests, with their events (product.queue.retention).
--
-- A request's jobs are found by their arguments (``args->>'request_id'``, indexed by
-- migration 0003): the request's row names only its latest job, and a requeued request has
-- had others. Only jobs in a finished status are touched: a job that waits or runs is never
-- deleted, even when its request is.

-- name: count_finished_jobs_of_requests
-- What delete_finished_jobs_of_requests would delete for the requests the caller's subquery
-- selects (positional parameters: the subquery's first, then task name and statuses).
WITH requests AS (/* slot: requests */),
     jobs AS (SELECT id FROM procrastinate_jobs
               WHERE task_name = %s
                 AND status = ANY(%s::procrastinate_job_status[])
                 AND args->>'request_id' IN (SELECT id::text FROM requests))
SELECT (SELECT count(*) FROM jobs),
       (SELECT count(*) FROM procrastinate_events WHERE job_id IN (SELECT id FROM jobs));

-- name: delete_events_of_finished_jobs
-- Lock the requests' finished jobs (skipping any another transaction holds), delete their
-- events, and return the jobs' ids with the number of events deleted.
WITH jobs AS (SELECT id FROM procrastinate_jobs
               WHERE task_name = %(task)s
                 AND status = ANY(%(statuses)s::procrastinate_job_status[])
                 AND args->>'request_id' = ANY(%(request_ids)s::text[])
                 FOR UPDATE SKIP LOCKED),
     events AS (DELETE FROM procrastinate_events
                 WHERE job_id IN (SELECT id FROM jobs) RETURNING 1)
SELECT array_agg(id), (SELECT count(*) FROM events) FROM jobs;

-- name: delete_finished_jobs
-- The status is checked again: a job cannot have restarted meanwhile (it is locked), but this
-- statement is the one that must never delete a live job.
DELETE FROM procrastinate_jobs
 WHERE id = ANY(%(ids)s) AND status = ANY(%(statuses)s::procrastinate_job_status[]);
