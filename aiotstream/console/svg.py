"""Small inline SVG charts for the console pages (no JS, nothing fetched): a score histogram and a bar chart
of one KPI over periods. Values are escaped; the result is markup for the templates."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def _num(v: float) -> str:
    """A short label for a chart value.

    >>> _num(0.8234), _num(1234.5), _num(3.0)
    ('0.823', '1234', '3')
    """
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def histogram(counts: Sequence[int], width: int = 220, height: int = 56, label: str = "") -> Markup:
    """Bars for the score bins over [0, 1] (equal widths), the tallest bin full height."""
    top = max(counts) if counts and max(counts) > 0 else 1
    n = max(len(counts), 1)
    bw = width / n
    bars = []
    for i, c in enumerate(counts):
        h = (height - 12) * c / top
        lo, hi = i / n, (i + 1) / n
        bars.append(f'<rect x="{i * bw:.1f}" y="{height - 12 - h:.1f}" width="{max(bw - 1, 1):.1f}" '
                    f'height="{h:.1f}" class="bar"><title>{lo:.2f}-{hi:.2f}: {c}</title></rect>')
    return Markup(
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label or "score histogram")}">{"".join(bars)}'
        f'<text x="0" y="{height - 1}" class="axis">0</text>'
        f'<text x="{width}" y="{height - 1}" class="axis" text-anchor="end">1</text></svg>')


def bars(points: Sequence[tuple[str, float | None]], title: str, unit: str = "", width: int = 420,
         height: int = 150) -> Markup:
    """One bar per period (``(label, value)``, oldest first; None: undefined in that period, drawn as a gap),
    the y axis from 0 to the largest value."""
    vals = [v for _, v in points if v is not None]
    top = max(vals) if vals and max(vals) > 0 else 1.0
    n = max(len(points), 1)
    plot_h, left = height - 34, 40
    bw = (width - left) / n
    heading = escape(title + (f" ({unit})" if unit else ""))
    out = [f'<text x="{left}" y="11" class="title">{heading}</text>',
           f'<text x="{left - 4}" y="22" class="axis" text-anchor="end">{_num(top)}</text>',
           f'<text x="{left - 4}" y="{14 + plot_h}" class="axis" text-anchor="end">0</text>',
           f'<line x1="{left}" y1="{14 + plot_h}" x2="{width}" y2="{14 + plot_h}" class="base"/>']
    for i, (lab, v) in enumerate(points):
        x = left + i * bw
        if v is None:
            out.append(f'<rect x="{x:.1f}" y="{14 + plot_h - 2}" width="{max(bw - 1, 1):.1f}" height="2" '
                       f'class="gap"><title>{escape(lab)}: undefined</title></rect>')
            continue
        h = plot_h * max(v, 0.0) / top
        out.append(f'<rect x="{x:.1f}" y="{14 + plot_h - h:.1f}" width="{max(bw - 1, 1):.1f}" '
                   f'height="{h:.1f}" class="bar"><title>{escape(lab)}: {_num(v)}</title></rect>')
    if points:
        out.append(f'<text x="{left}" y="{height - 4}" class="axis">{escape(points[0][0])}</text>')
        out.append(f'<text x="{width}" y="{height - 4}" class="axis" text-anchor="end">'
                   f'{escape(points[-1][0])}</text>')
    else:
        out.append(f'<text x="{left + 8}" y="{14 + plot_h / 2}" class="axis">no periods yet</text>')
    if points and not vals:
        out.append(f'<text x="{left + 8}" y="{14 + plot_h / 2}" class="axis">undefined in these periods '
                   '(no repairs, failures or samples)</text>')
    return Markup(f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                  f'role="img" aria-label="{escape(title)}">{"".join(out)}</svg>')
