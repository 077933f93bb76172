-- One job at a time, as the web handles them (product.queue.jobs): defer it with its request,
-- lock it before its request, cancel it. Each runs on Django's connection, inside the caller's
-- transaction, so it commits or rolls back with the request's row.

-- name: defer_job
-- Procrastinate's own defer function with one job (what Task.defer runs, without the Python
-- layers around it). Its INSERT fires Procrastinate's triggers: the 'deferred' event is
-- recorded, and a NOTIFY on the job's queue wakes the runners listening (delivered at commit).
SELECT (procrastinate_defer_jobs_v1(ARRAY[
           ROW(%(queue)s, %(task_name)s, %(priority)s, NULL, NULL, %(args)s::jsonb, NULL)
               ::procrastinate_job_to_defer_v1
       ]))[1];

-- name: cancel_job
-- Procrastinate's cancel with abort: a waiting job becomes cancelled, a running one is asked
-- to abort (its runner hears the NOTIFY, or sees the flag at its next heartbeat). NULL: the
-- job had ended already, or does not exist.
SELECT procrastinate_cancel_job_v1(%(job_id)s, true, false);

-- name: lock_job
SELECT 1 FROM procrastinate_jobs WHERE id = %(job_id)s FOR UPDATE;

-- name: defer_job_per_row
-- Procrastinate's defer as a piece of the caller's statement: one job for each row of the
-- caller's CTE /* slot: source */, with the arguments /* slot: args */ (a jsonb expression over
-- that CTE's columns), so the rows the jobs are for and the jobs are written by one statement
-- (the web's submit). Gives each new job's id as `id`. The INSERT fires the same triggers as
-- defer_job (the 'deferred' event, the NOTIFY on the queue, delivered at commit).
SELECT (procrastinate_defer_jobs_v1(ARRAY[
           ROW(%(queue)s, %(task_name)s, %(priority)s, NULL, NULL, /* slot: args */, NULL)
               ::procrastinate_job_to_defer_v1
       ]))[1] AS id
  FROM /* slot: source */;
