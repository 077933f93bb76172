"""The queue engine's SQL is loaded by name from its .sql files, fragments included, and a
malformed file or an unknown name fails loudly, naming what is wrong."""

from __future__ import annotations

import pytest

from product.queue import queries
from product.queue.queries import QueryFileError, parse, query

STATEMENTS = """\
-- A file's own description.

-- fragment: waiting
-- Which jobs wait.
status = 'todo'

-- name: count_waiting
-- How many jobs wait (this comment stays in the file).
SELECT count(*) FROM procrastinate_jobs
 WHERE /* fragment: waiting */;

-- name: jobs_of
SELECT id FROM procrastinate_jobs WHERE id IN (/* slot: ids */) AND /* fragment: waiting */;
"""


def test_a_statement_is_its_sql_with_fragments_included_and_descriptions_left_out():
    parsed = parse([("jobs.sql", STATEMENTS)])

    assert parsed == {
        "count_waiting": "SELECT count(*) FROM procrastinate_jobs\n WHERE status = 'todo'",
        "jobs_of": "SELECT id FROM procrastinate_jobs WHERE id IN (/* slot: ids */) "
                   "AND status = 'todo'",
    }


# What the statements with slots are given by their callers, in kind.
SLOTS = {
    "count_finished_jobs_of_requests": {"requests": "SELECT 1"},
    "defer_job_per_row": {"source": "admitted", "args": "'{}'::jsonb"},
}


def test_every_statement_of_the_package_loads_and_fragments_are_not_statements():
    names = queries.names()

    assert {"fetch_fair", "fetch_oldest", "finish", "rescue_stalled", "defer_job"} <= set(names)
    assert "takeable" not in names
    for name in names:
        text = query(name, **SLOTS.get(name, {}))
        assert "/* fragment:" not in text and not text.endswith(";")


def test_an_unknown_name_raises_a_key_error_naming_the_known_statements():
    with pytest.raises(KeyError, match=r"no queue statement named 'fetch_fast'; known: .*fetch_fair"):
        query("fetch_fast")


def test_a_slot_is_filled_by_the_caller_and_must_be_given():
    assert "WITH requests AS (SELECT id FROM inference_request)" in query(
        "count_finished_jobs_of_requests", requests="SELECT id FROM inference_request"
    )
    with pytest.raises(ValueError, match=r"has slots \['requests'\], was given \[\]"):
        query("count_finished_jobs_of_requests")
    with pytest.raises(ValueError, match=r"was given \['ids'\]"):
        query("finish", ids="1")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("a.sql", "-- name: x\nSELECT 1;"), ("b.sql", "-- name: x\nSELECT 2;")],
         r"b.sql: 'x' is also defined in a.sql"),
        ([("a.sql", "-- name: x\nSELECT /* fragment: nowhere */;")],
         r"'x' includes an unknown fragment 'nowhere'"),
        ([("a.sql", "-- fragment: loop\n/* fragment: loop */\n-- name: x\nSELECT /* fragment: loop */;")],
         r"fragment 'loop' includes itself: x -> loop"),
        ([("a.sql", "SELECT 1;\n-- name: x\nSELECT 2;")], r"a.sql: SQL before the first named block"),
        ([("a.sql", "-- name: x\n-- only a description\n\n-- name: y\nSELECT 1;")],
         r"a.sql: block 'x' has no SQL"),
    ],
)
def test_a_malformed_file_is_refused_with_what_is_wrong(files, message):
    with pytest.raises(QueryFileError, match=message):
        parse(files)
