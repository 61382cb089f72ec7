"""Server-rendered SVG line charts (no JavaScript library, nothing fetched)."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

COLORS = ("#2563eb", "#dc2626", "#059669", "#d97706")


def _fmt(v: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= div:
            return f"{v / div:.1f}{unit}"
    return f"{v:.0f}" if v == int(v) else f"{v:.1f}"


def line_chart(series: list[tuple[str, list[tuple[float, float]]]], *, width: int = 640, height: int = 160,
               title: str = "", chart_id: str = "") -> Markup:
    """``series``: (label, [(t seconds, value)]) each; the x axis is the last
    ``t`` range shared by all, the y axis starts at 0."""
    pad_l, pad_r, pad_t, pad_b = 48, 8, 18, 18
    pts = [p for _, s in series for p in s]
    ident = f' id="{escape(chart_id)}"' if chart_id else ""
    head = (f'<svg{ident} class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">')
    parts = [head, f'<text x="{pad_l}" y="12" class="title">{escape(title)}</text>']
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    parts.append(f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" class="frame"/>')
    if len(pts) < 2:
        parts.append(f'<text x="{pad_l + 8}" y="{pad_t + h / 2}" class="empty">collecting samples…</text></svg>')
        return Markup("".join(parts))
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    vmax = max(max(p[1] for p in pts), 1e-9)
    span = max(t1 - t0, 1e-9)
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 8}" class="axis" text-anchor="end">{_fmt(vmax)}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + h}" class="axis" text-anchor="end">0</text>')
    since = f"{span:.0f}" if span >= 10 else f"{span:.1f}"
    parts.append(f'<text x="{pad_l}" y="{height - 4}" class="axis">-{since} s</text>')
    parts.append(f'<text x="{width - pad_r}" y="{height - 4}" class="axis" text-anchor="end">now</text>')
    for i, (label, s) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{pad_l + (t - t0) / span * w:.1f},{pad_t + h - v / vmax * h:.1f}" for t, v in s)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{coords}"/>')
        parts.append(f'<text x="{pad_l + 8 + 150 * i}" y="{pad_t + 14}" fill="{color}" class="legend">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
