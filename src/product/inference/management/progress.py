"""A one-line progress bar for operator commands, drawn on stderr only when it is a terminal.

Piped into a file, cron mail or a test, a command prints nothing but its own lines; on a
terminal, long work shows how far it got. Lines the command prints meanwhile go through
``echo`` so the bar never splits them.
"""

from __future__ import annotations

import time
from typing import Any

_REDRAW_SECONDS = 0.1
_WIDTH = 30


class ProgressBar:
    """``stream`` is a command's ``self.stderr`` (Django's OutputWrapper)."""

    def __init__(self, stream: Any, total: int, label: str) -> None:
        self.stream, self.total, self.label = stream, total, label
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(total) and callable(isatty) and isatty()
        self.done = 0
        self._drawn_at = 0.0
        self._shown = False

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= _REDRAW_SECONDS or done >= self.total):
            self._drawn_at = now
            self._draw()

    def advance(self, step: int = 1) -> None:
        self.update(self.done + step)

    def echo(self, write, text: str) -> None:
        """Print a line with ``write`` (a command's stdout.write) without tearing the bar."""
        self._clear()
        write(text)
        if self.enabled and self._shown:
            self._draw()

    def close(self) -> None:
        if self.enabled and self._shown:
            self._draw()
            self._write("\n")
        self._shown = False

    def _draw(self) -> None:
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        self._write(f"\r{self.label} [{bar}] {self.done}/{self.total} {fraction:4.0%}")
        self._shown = True

    def _clear(self) -> None:
        if self.enabled and self._shown:
            self._write("\r\033[K")

    def _write(self, text: str) -> None:
        # Unstyled: a command's stderr would colour everything as an error.
        self.stream.write(text, style_func=_plain, ending="")
        self.stream.flush()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _plain(text: str) -> str:
    return text
