"""Charts as SVG, drawn on the server: horizontal bars (grouped or stacked).

No script, no font and nothing else is loaded: the SVG names generic font families only and
each bar carries a <title> (the browser's own tooltip), so a chart reads the same in a page, a
download and the PDF report. The palette is Okabe–Ito (distinguishable with colour blindness).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
_CHAR = 6.6  # average advance of a 12 px glyph, for laying out labels


@dataclass(frozen=True)
class Series:
    """One named set of values, one per category."""

    name: str
    values: Sequence[int | float]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def bars(
    *,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    stacked: bool = False,
    width: int = 640,
    chart_id: str = "chart",
) -> str:
    """Horizontal bars: one row per category, a bar per series (side by side or stacked)."""
    n_series = max(len(series), 1)
    label_w = min(max((len(c) for c in categories), default=4) * _CHAR + 16, width * 0.42)
    bar_h = 16 if stacked or n_series == 1 else 11
    row_h = (bar_h if stacked else bar_h * n_series) + 10
    # Legend entries flow left to right and wrap onto new lines.
    legend: list[tuple[float, int]] = []
    x_pos, line = 8.0, 0
    for item in series if n_series > 1 else ():
        item_w = 16 + len(item.name) * _CHAR + 18
        if x_pos > 8 and x_pos + item_w > width:
            x_pos, line = 8.0, line + 1
        legend.append((x_pos, line))
        x_pos += item_w
    legend_h = 18 * (line + 1) + 4 if legend else 0
    top = 34 + legend_h
    height = int(top + row_h * max(len(categories), 1) + 26)
    plot_x = label_w + 8
    plot_w = width - plot_x - 70
    if stacked:
        peak = max((sum(s.values[i] for s in series) for i in range(len(categories))), default=0)
    else:
        peak = max((v for s in series for v in s.values), default=0)
    scale_max = _nice_max(float(peak))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{chart_id}-t" font-family="{FONT}" font-size="12">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="20" font-size="14" font-weight="bold" fill="#1b1f24">'
        f"{escape(title)}</text>",
    ]
    for index, (item, (x, line)) in enumerate(zip(series, legend, strict=False)):
        colour = PALETTE[index % len(PALETTE)]
        y = 30 + 18 * line
        out.append(f'<rect x="{x:.0f}" y="{y}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16:.0f}" y="{y + 10}" fill="#1b1f24">{escape(item.name)}</text>')
    for tick in range(5):
        value = scale_max * tick / 4
        x = plot_x + plot_w * tick / 4
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 22}" '
            f'stroke="#d5dbe2" stroke-width="1"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" fill="#4a5563" '
            f'font-size="10">{escape(fmt(value))}</text>'
        )
    fits = max(int((label_w - 16) / _CHAR), 4)
    for row, category in enumerate(categories):
        y = top + row * row_h
        shown = category if len(category) <= fits else category[: fits - 1] + "…"
        out.append(
            f'<text x="{label_w:.0f}" y="{y + (row_h - 10) / 2 + 4:.1f}" text-anchor="end" '
            f'fill="#1b1f24"><title>{escape(category)}</title>{escape(shown)}</text>'
        )
        offset = 0.0
        for index, item in enumerate(series):
            value = float(item.values[row]) if row < len(item.values) else 0.0
            w = plot_w * value / scale_max if scale_max else 0.0
            colour = PALETTE[index % len(PALETTE)]
            by = y if stacked else y + index * bar_h
            bx = plot_x + offset
            label = (
                f"{category} · {item.name}: {fmt(value)}"
                if n_series > 1
                else (f"{category}: {fmt(value)}")
            )
            out.append(
                f'<rect x="{bx:.1f}" y="{by:.1f}" width="{max(w, 0):.1f}" '
                f'height="{bar_h - 2}" fill="{colour}"><title>{escape(label)}</title></rect>'
            )
            if stacked:
                offset += w
            else:
                out.append(
                    f'<text x="{bx + w + 4:.1f}" y="{by + bar_h - 4:.1f}" fill="#1b1f24" '
                    f'font-size="10">{escape(fmt(value))}</text>'
                )
        if stacked:
            total = sum(float(s.values[row]) for s in series if row < len(s.values))
            out.append(
                f'<text x="{plot_x + offset + 4:.1f}" y="{y + bar_h - 4:.1f}" fill="#1b1f24" '
                f'font-size="10">{escape(fmt(total))}</text>'
            )
    out.append("</svg>")
    return "".join(out)
