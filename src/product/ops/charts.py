"""Small line charts drawn on the server as inline SVG: no script, no CDN, nothing to load."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, PAD = 280, 70, 4


def line_chart(values: Sequence[float | None], *, title: str, unit: str) -> SafeString:
    """``values`` (oldest first; None: no data) as a line scaled to their maximum, which is
    printed with ``unit`` beside the latest value."""
    known = [v for v in values if v is not None]
    top = max(known, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points = [
        (PAD + n * step, HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD))
        for n, value in enumerate(values) if value is not None
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    latest = known[-1] if known else None
    return format_html(
        '<figure class="chart"><figcaption>{title} <span class="hint">latest {latest}, '
        'max {top}</span></figcaption>'
        '<svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}">'
        '<line x1="{pad}" y1="{base}" x2="{right}" y2="{base}" class="axis"/>'
        '<polyline points="{line}" class="series"/>{dots}</svg></figure>',
        title=title, top=f"{_number(max(known, default=0))} {unit}".strip(),
        latest="–" if latest is None else f"{_number(latest)} {unit}".strip(),
        w=WIDTH, h=HEIGHT, pad=PAD, right=WIDTH - PAD, base=HEIGHT - PAD, line=line,
        dots=format_html_join("", '<circle cx="{}" cy="{}" r="1.5"/>', ((f"{x:.1f}", f"{y:.1f}") for x, y in points[-1:])),
    )


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
