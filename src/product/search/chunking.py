"""How a document is cut into passages the model embeds: the one chunking rule.

The model (all-MiniLM-L6-v2) reads at most 256 word pieces; past that it truncates, and what
is cut off is never searched. English prose is about 1.3 word pieces per word, so a chunk holds
at most ``MAX_WORDS`` (150) words and ``MAX_CHARS`` (1,000) characters, about 200 word pieces:
room for long words, numbers and code. Consecutive chunks overlap by about ``OVERLAP_WORDS``
(30) words, so a passage that straddles a boundary is whole in one of them.

A chunk is made of whole sentences where it can be: the text is split into paragraphs (blank
lines), paragraphs into sentences (after ``.``, ``!`` or ``?`` and a space), and sentences are
packed into a chunk until the next would pass the budget; a chunk also ends at a paragraph's
end once it is half full. A sentence longer than the budget is cut into runs of
``OVERLAP_WORDS`` words, packed the same way. The next chunk starts with the last sentences (or words) of the previous one that fit the overlap.
Each chunk keeps its ``start`` and ``end`` offsets in the document's text, so
``text[start:end]`` is exactly the passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_WORDS = 150
MAX_CHARS = 1000
OVERLAP_WORDS = 30

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of a long one): offsets, words, and whether a paragraph ends."""

    start: int
    end: int
    words: int
    ends_paragraph: bool


def chunk_text(text: str) -> list[Chunk]:
    """The chunks of ``text``, in order (none for a text of only white space)."""
    units = _units(text)
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and _fits(units[i], units[j], words + units[j].words):
            words += units[j].words
            j += 1
            if units[j - 1].ends_paragraph and words >= MAX_WORDS // 2:
                break
        j = max(j, i + 1)
        start, end = units[i].start, units[j - 1].end
        chunks.append(Chunk(start, end, text[start:end]))
        if j >= len(units):
            break
        # Overlap: step back over trailing units worth at most OVERLAP_WORDS, but always forward.
        back, overlap = j, 0
        while back - 1 > i and overlap + units[back - 1].words <= OVERLAP_WORDS:
            back -= 1
            overlap += units[back].words
        i = back
    return chunks


def _fits(first: _Unit, last: _Unit, words: int) -> bool:
    return first is last or (words <= MAX_WORDS and last.end - first.start <= MAX_CHARS)


def _units(text: str) -> list[_Unit]:
    units = []
    for paragraph in _spans(text, _PARAGRAPH, 0, len(text)):
        sentences = list(_spans(text, _SENTENCE_END, *paragraph))
        for index, (start, end) in enumerate(sentences):
            pieces = _pieces(text, start, end)
            for p, (piece_start, piece_end, words) in enumerate(pieces):
                last = index == len(sentences) - 1 and p == len(pieces) - 1
                units.append(_Unit(piece_start, piece_end, words, last))
    return units


def _spans(text: str, separator: re.Pattern, start: int, end: int):
    """The non-blank stretches of ``text[start:end]`` between matches of ``separator``,
    stripped of white space at both ends."""
    position = start
    for match in separator.finditer(text, start, end):
        yield from _stripped(text, position, match.start())
        position = match.end()
    yield from _stripped(text, position, end)


def _stripped(text: str, start: int, end: int):
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _pieces(text: str, start: int, end: int) -> list[tuple[int, int, int]]:
    """A sentence as (start, end, words) pieces: itself if it fits the budget, else runs of
    OVERLAP_WORDS words (so they pack and overlap as sentences do; a run is cut at MAX_CHARS)."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    if len(words) <= MAX_WORDS and end - start <= MAX_CHARS:
        return [(start, end, len(words))]
    pieces, first = [], 0
    while first < len(words):
        last = first
        while (
            last + 1 < len(words) and last + 1 - first < OVERLAP_WORDS
            and words[last + 1][1] - words[first][0] <= MAX_CHARS
        ):
            last += 1
        piece_start, piece_end = words[first][0], min(words[last][1], words[first][0] + MAX_CHARS)
        pieces.append((piece_start, piece_end, last - first + 1))
        first = last + 1
    return pieces
