"""A line chart drawn as SVG by hand: days along the bottom, amounts up the side.

No plotting library: the chart is a few dozen elements, and SVG keeps it sharp at any size
and readable as text (tests parse it back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from xml.sax.saxutils import escape, quoteattr

WIDTH_PX = 760
HEIGHT_PX = 380
_LEFT, _RIGHT, _TOP, _BOTTOM = 96, 24, 48, 56
_GRID_LINES = 5


@dataclass(frozen=True, slots=True)
class Series:
    """One line of the chart."""

    label: str
    color: str  # an SVG colour, e.g. "#1f77b4"
    values: Sequence[int]  # centimes, one per day
    dashed: bool = False


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 1.5, 2, 3 or 5 times a power of ten units at or above `value`
    centimes: the top of the axis, in round figures on every grid line."""
    units = max(1, -(-value // 100))
    step = 1
    while True:
        for tenths in (10, 15, 20, 30, 50):
            if step * tenths >= units * 10:
                return step * tenths * 10
        step *= 10


def _label(centimes: int, top: int) -> str:
    """A grid line's amount: whole units on a large axis, with cents on a small one."""
    units, cents = divmod(centimes, 100)
    whole = f"{units:,}".replace(",", "\u202f")
    return whole if top >= 1_000 * 100 else f"{whole},{cents:02d}"


def line_chart_svg(title: str, unit: str, days: Sequence[date], series: Sequence[Series]) -> str:
    """An SVG document plotting each series over `days` (values in centimes)."""
    assert days and all(len(s.values) == len(days) for s in series)
    top_value = _nice_ceiling(max([0, *(v for s in series for v in s.values)]))
    plot_w = WIDTH_PX - _LEFT - _RIGHT
    plot_h = HEIGHT_PX - _TOP - _BOTTOM

    def x(i: int) -> float:
        return _LEFT + (plot_w * i / (len(days) - 1) if len(days) > 1 else plot_w / 2)

    def y(value: int) -> float:
        return _TOP + plot_h * (1 - value / top_value)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{HEIGHT_PX}" '
        f'viewBox="0 0 {WIDTH_PX} {HEIGHT_PX}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH_PX}" height="{HEIGHT_PX}" fill="white"/>',
        f'<text x="{WIDTH_PX / 2}" y="24" text-anchor="middle" font-size="16">'
        f"{escape(title)}</text>",
    ]
    for k in range(_GRID_LINES + 1):
        value = top_value * k // _GRID_LINES
        gy = y(value)
        parts.append(
            f'<line x1="{_LEFT}" y1="{gy:.1f}" x2="{WIDTH_PX - _RIGHT}" y2="{gy:.1f}" '
            'stroke="#dddddd"/>'
        )
        parts.append(
            f'<text x="{_LEFT - 8}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(_label(value, top_value))} {escape(unit)}</text>"
        )
    label_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        if i % label_every == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{HEIGHT_PX - _BOTTOM + 18}" text-anchor="middle">'
                f"{day.day:02d}/{day.month:02d}</text>"
            )
    for index, s in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        dash = ' stroke-dasharray="8 5"' if s.dashed else ""
        width = 4 if s.dashed else 2
        parts.append(
            f'<polyline fill="none" stroke={quoteattr(s.color)} stroke-width="{width}"{dash} '
            f"points={quoteattr(points)}><title>{escape(s.label)}</title></polyline>"
        )
        legend_x = _LEFT + index * 220
        legend_y = HEIGHT_PX - 16
        parts.append(
            f'<line x1="{legend_x}" y1="{legend_y - 4}" x2="{legend_x + 28}" y2="{legend_y - 4}" '
            f'stroke={quoteattr(s.color)} stroke-width="{width}"{dash}/>'
        )
        parts.append(f'<text x="{legend_x + 34}" y="{legend_y}">{escape(s.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
