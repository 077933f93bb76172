-- Paused queues (product.queue.pauses): runners take no new jobs from a queue named in
-- queue_paused_queues (the fragment ``takeable`` in intake.sql), and finish the ones they hold.
-- Procrastinate 3.10.0 has no pause of its own (its schema has procrastinate_fetch_job_v2
-- only), so this table is the product's.

-- name: pause_queue
-- Pause a queue, or keep the pause it already has (who and when stay the first pause's).
-- The second SELECT sees the table as it was before the INSERT: it answers only when the
-- queue was paused already.
WITH added AS (
    INSERT INTO queue_paused_queues (queue_name, paused_by, reason)
    VALUES (%(queue)s, %(paused_by)s, %(reason)s)
    ON CONFLICT (queue_name) DO NOTHING
    RETURNING queue_name, paused_at, paused_by, reason
)
SELECT queue_name, paused_at, paused_by, reason, now() - paused_at AS paused_for, true AS added
  FROM added
 UNION ALL
SELECT queue_name, paused_at, paused_by, reason, now() - paused_at AS paused_for, false AS added
  FROM queue_paused_queues
 WHERE queue_name = %(queue)s AND NOT EXISTS (SELECT 1 FROM added);

-- name: resume_queue
-- Resume a queue, and wake the runners that serve it at once (they would otherwise wait for
-- their next poll): a notification on the channels Procrastinate's trigger uses for a new job,
-- which runners LISTEN on, delivered when the caller's transaction commits. Its type,
-- queue_resumed, is one Procrastinate's own worker ignores.
WITH removed AS (
    DELETE FROM queue_paused_queues
     WHERE queue_name = %(queue)s
    RETURNING queue_name, paused_at, paused_by, reason
),
woken AS (
    SELECT removed.queue_name,
           pg_notify(channel, json_build_object('type', 'queue_resumed',
                                                'queue', removed.queue_name)::text)
      FROM removed,
           unnest(ARRAY['procrastinate_queue_v1#' || removed.queue_name,
                        'procrastinate_any_queue_v1']) AS channel
)
-- (``woken`` is read below only so that it runs: PostgreSQL skips a SELECT in WITH that
-- nothing reads.)
SELECT queue_name, paused_at, paused_by, reason, now() - paused_at AS paused_for
  FROM removed
 WHERE (SELECT count(*) FROM woken) > 0;

-- name: paused_queues
-- Every paused queue, with who paused it, when, and for how long (the database's clock).
SELECT queue_name, paused_at, paused_by, reason, now() - paused_at AS paused_for
  FROM queue_paused_queues
 ORDER BY queue_name;
