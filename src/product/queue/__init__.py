"""The queue engine: all code that reads or writes Procrastinate's ``procrastinate_*`` tables.

PostgreSQL is the queue; Procrastinate owns its schema (tables, triggers, functions) and its
admin, CLI and ``JobManager``. This package is how the product uses that schema: the web
defers, locks and cancels single jobs (``jobs``); runners take many jobs per statement
(``intake``), end them (``outcomes``), and register, send heartbeats and rescue the jobs of
dead runners (``workers``); operators read the queue's state (``telemetry``), prune old
jobs (``retention``) and pause and resume a queue (``pauses``: the one table of the package's
own, ``models.PausedQueue``, as Procrastinate 3.10.0 has no pause). It never imports torch, so
the web imports it freely.

The rules every statement here keeps:

- **Procrastinate's state machine, on its tables.** Every change is one Procrastinate makes
  itself (a job waits, runs, ends; a cancel or an abort), so its triggers record the same
  events and NOTIFY the same channels, and its tools keep telling the truth. Single-job
  changes call Procrastinate's own SQL functions; the runners' statements make the change of
  ``procrastinate_fetch_job_v2`` (or finish, hand back) on many rows at once.
- **SQL lives in ``.sql`` files**, one beside each module, each statement a named block with the
  comments that explain it, loaded once and called by name (``queries.query("fetch_fair")``).
- **Django's connection, the caller's transaction.** Nothing here opens a connection or a
  transaction of its own (``rescue_stalled`` only makes its two statements one), so a job
  deferred with a request commits with it, and the lock order (job, then request) is the
  caller's to keep.
- **One definition** of each job-status set (``statuses``), of the errors that mean the
  database is unavailable (``errors``) and of how retries back off (``backoff``).

The modules are named for what happens to a job, not after Procrastinate's classes: a reader
follows a job from ``jobs.defer`` through ``intake.fetch`` to ``outcomes.finish``, with
``workers`` for what happens when a runner dies on the way. Each module's SQL sits beside it
(``intake.py``, ``intake.sql``) rather than in a ``sql/`` folder: the statement and the Python
that binds its parameters are read together, and the files ship as the package data that
pyproject.toml already declares (``*.sql``).
"""
