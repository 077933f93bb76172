"""A passage as HTML with the query's words marked: the text escaped, each match in <mark>."""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

_STOP = {"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "in", "is",
         "it", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when", "where",
         "which", "who", "why", "with", "does", "do", "can"}


def query_words(query: str) -> list[str]:
    return [w for w in re.findall(r"\w+", query.lower()) if len(w) > 1 and w not in _STOP]


def highlighted(text: str, query: str) -> SafeString:
    """``text`` escaped, with words that start with a query word (so "queue" marks "queues")
    in ``<mark>``. Matches are found in the raw text and each piece escaped on its own."""
    words = query_words(query)
    if not words:
        return mark_safe(escape(text))
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\w*", re.IGNORECASE)
    out, position = [], 0
    for match in pattern.finditer(text):
        out += [escape(text[position:match.start()]), "<mark>", escape(match.group()), "</mark>"]
        position = match.end()
    out.append(escape(text[position:]))
    return mark_safe("".join(out))
