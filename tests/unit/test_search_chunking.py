"""The chunking rule: whole sentences within the budget, overlap, exact offsets."""

from product.search.chunking import MAX_CHARS, MAX_WORDS, OVERLAP_WORDS, chunk_text
from product.search.extraction import ExtractionError, extract_text

import pytest


def _sentences(n, words=10):
    return [" ".join(f"w{i}x{j}" for j in range(words - 1)) + f" end{i}." for i in range(n)]


def test_a_short_text_is_one_chunk_with_its_offsets():
    text = "\n  Hello world. A second sentence!  \n"
    (chunk,) = chunk_text(text)
    assert chunk.text == "Hello world. A second sentence!"
    assert text[chunk.start:chunk.end] == chunk.text


def test_blank_text_has_no_chunks():
    assert chunk_text(" \n\n \t") == []


def test_chunks_are_whole_sentences_within_the_budget_and_overlap():
    text = " ".join(_sentences(60))  # 600 words, sentences of 10.
    chunks = chunk_text(text)
    assert len(chunks) > 3
    for chunk in chunks:
        assert text[chunk.start:chunk.end] == chunk.text
        assert len(chunk.text.split()) <= MAX_WORDS and len(chunk.text) <= MAX_CHARS
        assert chunk.text.endswith(".")  # Ends at a sentence.
    for before, after in zip(chunks, chunks[1:]):
        overlap = before.end - after.start
        assert overlap > 0  # The next starts inside the previous.
        assert len(text[after.start:before.end].split()) <= OVERLAP_WORDS
        assert after.start > before.start
    assert chunks[-1].end == len(text)


def test_a_chunk_ends_at_a_paragraph_once_half_full():
    first = " ".join(_sentences(9))  # 90 words.
    text = first + "\n\n" + " ".join(_sentences(9))
    chunks = chunk_text(text)
    assert chunks[0].end == len(first)


def test_a_sentence_longer_than_the_budget_is_cut_by_words_and_covered():
    text = " ".join(f"word{i}" for i in range(1000))
    chunks = chunk_text(text)
    assert all(len(c.text.split()) <= MAX_WORDS for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(c.text.split())
    assert covered == set(text.split())


def test_html_gives_its_visible_text_in_paragraphs():
    html = b"<html><head><title>T</title><style>p{}</style></head><body><h1>Queue</h1><p>Jobs &amp; rows.</p><script>x()</script></body></html>"
    assert extract_text("page.html", html) == "Queue\n\nJobs & rows."


def test_other_kinds_and_binary_files_are_refused():
    with pytest.raises(ExtractionError, match="only"):
        extract_text("a.pdf", b"%PDF")
    with pytest.raises(ExtractionError, match="not UTF-8"):
        extract_text("a.txt", b"\xff\xfe\x00")
