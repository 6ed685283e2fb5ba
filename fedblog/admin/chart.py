"""Small server-side charts: day series turned into SVG geometry for a template (no script).

Pure functions: the template draws ``<rect>``/``<polyline>`` from these numbers, so the chart
is plain markup that works with JavaScript off and under a strict Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH, HEIGHT = 600, 170
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 24  # room for the axis labels


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # "2026-11-01: 3"


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    text: str
    anchor: str = "middle"  # SVG text-anchor: the first and last date labels stay inside the chart


@dataclass(frozen=True)
class Chart:
    title: str
    kind: str  # bars | line
    width: int
    height: int
    bars: list[Bar]
    points: str  # polyline "x,y x,y ..." for a line chart
    area: str  # polygon under the line
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline: float
    summary: str  # one sentence for screen readers
    left: int = LEFT  # the plot area spans x = left .. plot_right
    plot_right: int = WIDTH - RIGHT


def days_back(today: date, days: int) -> list[date]:
    return [today - timedelta(days=days - 1 - i) for i in range(days)]


def cumulative(per_day: Mapping[date, int], days: list[date], total_now: int) -> list[int]:
    """Running total at the end of each day, ending at ``total_now`` (those who still follow)."""
    running = total_now - sum(n for d, n in per_day.items() if d >= days[0])
    out = []
    for d in days:
        running += per_day.get(d, 0)
        out.append(running)
    return out


def _nice_max(value: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000):
        if value <= step * 4:
            return step * 4
    return -(-value // 10000) * 10000


def build(title: str, days: list[date], values: list[int], *, kind: str, unit: str) -> Chart:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low = min(values) if kind == "line" and values else 0
    low = (low // 10) * 10 if low >= 10 else 0
    top = low + _nice_max(max(max(values, default=0) - low, 1))
    scale = plot_h / (top - low)
    base = TOP + plot_h
    slot = plot_w / max(len(days), 1)
    bars: list[Bar] = []
    pts: list[str] = []
    for i, (d, v) in enumerate(zip(days, values, strict=True)):
        h = (v - low) * scale
        if kind == "bars":
            bars.append(Bar(round(LEFT + i * slot + slot * 0.15, 2), round(base - h, 2), round(slot * 0.7, 2),
                            round(h, 2), f"{d.isoformat()}: {v} {unit}"))
        else:
            pts.append(f"{round(LEFT + i * slot + slot / 2, 2)},{round(base - h, 2)}")
    area = ""
    if pts:
        first_x, last_x = pts[0].split(",")[0], pts[-1].split(",")[0]
        area = f"{first_x},{base} " + " ".join(pts) + f" {last_x},{base}"
    x_ticks = [
        Tick(LEFT if i == 0 else WIDTH - RIGHT if i == len(days) - 1 else round(LEFT + i * slot + slot / 2, 2),
             HEIGHT - 6, days[i].strftime("%b %d"), "start" if i == 0 else "end" if i == len(days) - 1 else "middle")
        for i in sorted({0, len(days) // 2, len(days) - 1}) if days
    ]
    y_ticks = [Tick(LEFT - 6, round(base - (v - low) * scale + 4, 2), str(v), "end")
               for v in (low, (low + top) // 2, top)]
    total = sum(values) if kind == "bars" else (values[-1] if values else 0)
    summary = (
        f"{title}: {total} {unit} in the last {len(days)} days"
        if kind == "bars"
        else f"{title}: {values[0] if values else 0} {len(days)} days ago, {total} now"
    )
    return Chart(title, kind, WIDTH, HEIGHT, bars, " ".join(pts), area, x_ticks, y_ticks, base, summary)
