"""The gpu runner process: keeps models loaded and warm, takes jobs from PostgreSQL
(Procrastinate, SELECT … FOR UPDATE SKIP LOCKED), batches them, and writes results back.

Layers, outermost first: ``__main__`` (process lifecycle, signals, the Procrastinate worker) →
``tasks`` (one job: load the request, run it, write the outcome) → ``batcher`` (groups the
inputs of jobs that wait together into one forward pass) → ``models`` (load, run one batch).
"""
