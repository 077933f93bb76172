"""The operations page (``/ops/``): the queue, activity charts, runners, failures grouped, and
actions on every request matching a filter, each recorded in an audit trail."""
