-- How runners take waiting jobs, many per statement (product.queue.intake).
--
-- The same state change as procrastinate_fetch_job_v2 (status 'doing', the worker's id) on
-- many rows at once, on the same table, so Procrastinate's triggers record the same events.

-- fragment: takeable
-- Which waiting jobs may be taken at all: procrastinate_fetch_job_v2's rule. Within one
-- snapshot a job whose lock is shared by an earlier (or higher-priority) waiting job is never a
-- candidate, so one fetch takes at most one job per lock, and never one whose lock is running.
-- (Written "lock IS NULL OR NOT EXISTS" so that jobs without a lock, nearly all, cost no
-- look-up: as a plain NOT EXISTS PostgreSQL hashes the whole table for an anti-join at every
-- fetch.) Paused queues (product.queue.pauses) are left out: their list is read once per
-- statement (an uncorrelated subquery), and is usually empty.
       jobs.status = 'todo'
   AND jobs.queue_name = ANY(%(queues)s)
   AND jobs.queue_name <> ALL(ARRAY(SELECT queue_name FROM queue_paused_queues))
   AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
   AND (jobs.lock IS NULL OR NOT EXISTS (
        SELECT 1
          FROM procrastinate_jobs AS other
         WHERE other.lock = jobs.lock
           AND (other.status = 'doing'
                OR (other.status = 'todo'
                    AND (other.priority > jobs.priority
                         OR (other.priority = jobs.priority AND other.id < jobs.id))))))

-- fragment: take
-- Mark the jobs of ``chosen`` as running here, and return them as procrastinate Job rows.
UPDATE procrastinate_jobs AS jobs
   SET status = 'doing', worker_id = %(worker_id)s
  FROM chosen
 WHERE jobs.id = chosen.id
RETURNING jobs.id, jobs.status, jobs.priority, jobs.lock, jobs.queueing_lock, jobs.task_name,
          jobs.args, jobs.scheduled_at, jobs.queue_name, jobs.attempts, jobs.abort_requested,
          jobs.worker_id

-- fragment: owner
-- A job's owner, as its arguments name it (jobs without one share the owner ''). The same
-- expression as in the index inference_fair_intake (migration 0005), which the planner only
-- uses for an identical expression.
COALESCE(jobs.args->>'owner', '')

-- name: fetch_oldest
-- The old order (GPU_RUNNER_FAIR=0, for comparing): procrastinate_fetch_job_v2 with LIMIT n,
-- the oldest work of all owners first.
WITH chosen AS (
    SELECT jobs.id
      FROM procrastinate_jobs AS jobs
     WHERE /* fragment: takeable */
     ORDER BY jobs.priority DESC, jobs.id ASC
     LIMIT %(limit)s
       FOR UPDATE OF jobs SKIP LOCKED
)
/* fragment: take */;

-- name: fetch_fair
-- Fair turns: within a priority, weighted fair queueing by texts. A job's "virtual finish" is
-- the number of texts its owner has waiting up to and including it, and the lowest goes first:
-- an owner with one small job waiting goes before the second job of a backlog, whatever their
-- ages; owners with backlogs alternate by texts. Jobs are taken in that order while the texts
-- before them fit the runner's room (``room``: at least one job when there is room at all);
-- jobs of ``urgent`` priority or more are taken whatever their texts.
--
-- Window functions cannot sit with FOR UPDATE in one SELECT level, so ``ordered`` ranks in a
-- snapshot and ``locked`` locks in that order, skipping rows other runners hold; the texts are
-- summed again over what was locked, so rows skipped do not use up this runner's room. Rows
-- locked beyond the room stay untouched and are free again when the transaction ends.
-- args->>'owner' and args->>'texts' come from the job (jobs without them: one owner, one text
-- each, so they keep their priority-then-age order).
--
-- Ranking every waiting job costs tens of milliseconds with 20,000 of them, so the statement
-- only looks at what can be taken: ``owners`` lists the (priority, owner) pairs waiting by
-- skipping through the index inference_fair_intake (migration 0005), one probe each, and
-- ``waiting`` takes each owner's first ``limit`` jobs from it (no later job of an owner can be
-- among the first ``limit`` overall: its owner's earlier ones all rank before it).
WITH RECURSIVE owners AS (
    (SELECT jobs.priority, /* fragment: owner */ AS owner
       FROM procrastinate_jobs AS jobs
      WHERE jobs.status = 'todo' AND (%(room)s > 0 OR jobs.priority >= %(urgent)s)
      ORDER BY jobs.priority, /* fragment: owner */
      LIMIT 1)
    UNION ALL
    SELECT next.priority, next.owner
      FROM owners, LATERAL (
           SELECT jobs.priority, /* fragment: owner */ AS owner
             FROM procrastinate_jobs AS jobs
            WHERE jobs.status = 'todo' AND (%(room)s > 0 OR jobs.priority >= %(urgent)s)
              AND (jobs.priority, /* fragment: owner */) > (owners.priority, owners.owner)
            ORDER BY jobs.priority, /* fragment: owner */
            LIMIT 1) AS next
),
waiting AS (
    SELECT first.id, first.priority, first.texts,
           sum(first.texts) OVER (PARTITION BY first.priority, first.owner
                                  ORDER BY first.id) AS finish
      FROM owners, LATERAL (
           SELECT jobs.id, jobs.priority, owners.owner,
                  COALESCE((jobs.args->>'texts')::int, 1) AS texts
             FROM procrastinate_jobs AS jobs
            WHERE /* fragment: takeable */
              AND jobs.priority = owners.priority AND /* fragment: owner */ = owners.owner
            ORDER BY jobs.id
            LIMIT %(limit)s) AS first
),
ordered AS (
    SELECT waiting.*,
           (sum(texts) OVER (ORDER BY priority DESC, finish, id))::bigint - texts AS before
      FROM waiting
),
locked AS (
    SELECT jobs.id, ordered.priority, ordered.texts, ordered.finish
      FROM ordered
      JOIN procrastinate_jobs AS jobs ON jobs.id = ordered.id
     WHERE jobs.status = 'todo'
       AND (ordered.priority >= %(urgent)s OR ordered.before < 2 * %(room)s)
     ORDER BY ordered.priority DESC, ordered.finish, ordered.id
     LIMIT %(limit)s
       FOR UPDATE OF jobs SKIP LOCKED
),
chosen AS (
    SELECT id
      FROM (SELECT id, priority,
                   (sum(texts) OVER (ORDER BY priority DESC, finish, id))::bigint - texts AS before
              FROM locked) AS taking
     WHERE priority >= %(urgent)s OR before < %(room)s
)
/* fragment: take */;
