"""The text of an uploaded file, by kind: what a document's chunks are cut from.

Kinds are named by file extension (``KINDS``). Plain text and Markdown are taken as they are
(Markdown's marks are few and read as words). HTML gives its visible text, from the standard
library's ``html.parser``: scripts, styles and the head are left out, and block elements end
a paragraph, so chunks break where the page's paragraphs do. Another kind is one more entry
in ``KINDS`` (docs/search.md).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_FILE_BYTES = 2 * 1024 * 1024


class ExtractionError(ValueError):
    """The file cannot be read as a document; the message says why."""


def _plain(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExtractionError(f"it is not UTF-8 text ({error.reason} at byte {error.start}).") from None


class _VisibleText(HTMLParser):
    _HIDDEN = {"script", "style", "head", "template", "noscript", "svg"}
    _BLOCKS = {
        "p", "div", "section", "article", "header", "footer", "li", "ul", "ol", "table", "tr",
        "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "br", "hr", "dt", "dd", "title",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def _html(data: bytes) -> str:
    parser = _VisibleText()
    parser.feed(_plain(data))
    parser.close()
    paragraphs = (re.sub(r"\s+", " ", part).strip() for part in "".join(parser.parts).split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


KINDS = {".txt": _plain, ".md": _plain, ".markdown": _plain, ".html": _html, ".htm": _html}


def extract_text(filename: str, data: bytes) -> str:
    """The text of file ``filename`` (its kind from its extension), or ExtractionError."""
    suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in KINDS:
        raise ExtractionError(f"{filename}: only {', '.join(sorted(KINDS))} files can be added.")
    if len(data) > MAX_FILE_BYTES:
        raise ExtractionError(f"{filename}: larger than {MAX_FILE_BYTES // 1024 // 1024} MiB.")
    try:
        text = KINDS[suffix](data)
    except ExtractionError as error:
        raise ExtractionError(f"{filename}: {error}") from None
    if not text.strip():
        raise ExtractionError(f"{filename}: has no text.")
    return text.replace("\x00", "")
