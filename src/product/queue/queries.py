"""The queue engine's SQL, by name, from the ``.sql`` files of this package.

Each module's statements sit beside it (``intake.sql`` next to ``intake.py``: the package data
that pyproject.toml already ships), as named blocks::

    -- name: fetch_oldest
    -- Why it is written so (comment lines right after the name: kept in the file, not sent).
    SELECT ...;

A block named ``-- fragment: takeable`` is a piece of SQL that several statements share (a
WHERE condition, a RETURNING list); a statement includes it where it writes
``/* fragment: takeable */``. A statement that the caller completes (with a subquery the ORM
compiled) marks the place ``/* slot: requests */``, and ``query(name, requests=sql)`` fills it.

Files are read once, on the first ``query()`` call, and checked as a whole then: two blocks of
one name, an include of a missing fragment or a fragment that includes itself raise at once
rather than when some rarely used statement first runs.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_HEADER = re.compile(r"^-- (name|fragment): ([a-z][a-z0-9_]*)\s*$")
_INCLUDE = re.compile(r"/\* fragment: ([a-z][a-z0-9_]*) \*/")
_SLOT = re.compile(r"/\* slot: ([a-z][a-z0-9_]*) \*/")


class QueryFileError(ValueError):
    """A ``.sql`` file of this package is malformed; the message names the file and block."""


def query(name: str, **slots: str) -> str:
    """The statement called ``name``, its fragments included and its slots filled.

    Raises KeyError naming the known statements for an unknown name, and ValueError when the
    slots given are not exactly the statement's."""
    statements = _statements()
    try:
        text = statements[name]
    except KeyError:
        known = ", ".join(sorted(statements))
        raise KeyError(f"no queue statement named {name!r}; known: {known}") from None
    wanted = set(_SLOT.findall(text))
    if wanted != set(slots):
        raise ValueError(
            f"statement {name!r} has slots {sorted(wanted)}, was given {sorted(slots)}"
        )
    return _SLOT.sub(lambda match: slots[match.group(1)], text) if slots else text


def names() -> list[str]:
    """Every statement's name, sorted."""
    return sorted(_statements())


@functools.cache
def _statements() -> dict[str, str]:
    folder = resources.files("product.queue")
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return parse(files)


def parse(files: list[tuple[str, str]]) -> dict[str, str]:
    """Statements by name from ``(file name, text)`` pairs, fragments included."""
    blocks: dict[str, dict[str, str]] = {"name": {}, "fragment": {}}
    seen: dict[str, str] = {}
    for file_name, text in files:
        for kind, name, body in _blocks(file_name, text):
            if name in seen:
                raise QueryFileError(f"{file_name}: {name!r} is also defined in {seen[name]}")
            seen[name] = file_name
            blocks[kind][name] = body
    fragments = blocks["fragment"]
    return {name: _include(body, fragments, (name,)) for name, body in blocks["name"].items()}


def _blocks(file_name: str, text: str):
    """``(kind, name, body)`` for each block of one file; the comment lines before the first
    block describe the file."""
    header: tuple[str, str] | None = None
    lines: list[str] = []
    for line in [*text.splitlines(), None]:
        match = _HEADER.match(line) if line is not None else None
        if line is not None and match is None:
            lines.append(line)
            continue
        if header is None:
            if not _is_comment(lines):
                raise QueryFileError(f"{file_name}: SQL before the first named block")
        else:
            body = _body(lines)
            if not body:
                raise QueryFileError(f"{file_name}: block {header[1]!r} has no SQL")
            yield (*header, body)
        if match is not None:
            header = (match.group(1), match.group(2))
        lines = []


def _is_comment(lines: list[str]) -> bool:
    return all(not line.strip() or line.lstrip().startswith("--") for line in lines)


def _body(lines: list[str]) -> str:
    """A block's SQL: its leading comment lines (the block's description) and a trailing
    semicolon dropped."""
    start = 0
    while start < len(lines) and (not lines[start].strip() or lines[start].startswith("--")):
        start += 1
    return "\n".join(lines[start:]).strip().removesuffix(";").rstrip()


def _include(body: str, fragments: dict[str, str], path: tuple[str, ...]) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name in path:
            raise QueryFileError(f"fragment {name!r} includes itself: {' -> '.join(path)}")
        if name not in fragments:
            raise QueryFileError(f"{path[-1]!r} includes an unknown fragment {name!r}")
        return _include(fragments[name], fragments, (*path, name))

    return _INCLUDE.sub(replace, body)
