"""Charts as inline SVG, laid out here and drawn by ``templates/admin/dashboard/chart.html``.

No script and no external file: the page works as it is served. Layout is pure arithmetic on
numbers; every text (labels, titles) reaches the SVG through the template's autoescape. Each
chart carries a title and a description for screen readers, and a table with the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

WIDTH = 640
HEIGHT = 220
LEFT = 44  # room for the y-axis figures
RIGHT = 8
TOP = 10
BOTTOM = 24  # room for the x-axis labels
ROW_LABEL = 200  # room for the labels of a horizontal bar chart
ROW_HEIGHT = 22


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    series: int
    tip: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    description: str
    width: int
    height: int
    series: list[str]
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    gridlines: list[float] = field(default_factory=list)
    polyline: str = ""
    table_head: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(cell != "0" for row in self.table_rows for cell in row[1:])


def nice_max(value: float) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)


def _y_axis(top: int, plot_height: float) -> tuple[list[float], list[Label]]:
    lines, labels = [], []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_height * (1 - fraction)
        lines.append(round(y, 1))
        value = top * fraction
        text = f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
        labels.append(Label(LEFT - 6, round(y + 4, 1), text, "end"))
    return lines, labels


def _x_labels(labels: Sequence[str], slot: float) -> list[Label]:
    """First, middle and last label, so they never overlap."""
    if not labels:
        return []
    picks = sorted({0, len(labels) // 2, len(labels) - 1})
    return [Label(round(LEFT + slot * (i + 0.5), 1), HEIGHT - 6, labels[i]) for i in picks]


def _table(labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]) -> list[list[str]]:
    return [[label, *(str(values[i]) for _, values in series)] for i, label in enumerate(labels)]


def _summary(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]]) -> str:
    if not labels:
        return f"{title}: no data."
    parts = []
    for name, values in series:
        peak = max(range(len(values)), key=lambda i: values[i])
        parts.append(f"{name}: {sum(values):,} in total, at most {values[peak]:,} ({labels[peak]})")
    return f"{title}, {labels[0]} to {labels[-1]}. " + "; ".join(parts) + "."


def _chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    label_head: str,
    **drawing: Any,
) -> Chart:
    """What every chart has: its series' names, a description and the table of its figures
    (one row per category: a day, a bucket, a topic)."""
    fields: dict[str, Any] = {
        "description": _summary(title, categories, series),
        "width": WIDTH,
        "height": HEIGHT,
        **drawing,
    }
    return Chart(
        id=chart_id,
        title=title,
        series=[name for name, _ in series],
        table_head=[label_head, *(name for name, _ in series)],
        table_rows=_table(categories, series),
        **fields,
    )


def column_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    label_head: str = "day",
) -> Chart:
    """Vertical bars, one group per label, one bar per series."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_max(max((v for _, values in series for v in values), default=0))
    slot = plot_w / max(len(labels), 1)
    bar = slot * 0.8 / max(len(series), 1)
    rects = []
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            height = plot_h * value / top
            rects.append(
                Rect(
                    x=round(LEFT + slot * i + slot * 0.1 + bar * s, 1),
                    y=round(TOP + plot_h - height, 1),
                    width=round(max(bar, 1.0), 1),
                    height=round(height, 1),
                    series=s,
                    tip=f"{labels[i]}: {value:,} {name}",
                )
            )
    lines, y_labels = _y_axis(top, plot_h)
    return _chart(
        chart_id,
        title,
        labels,
        series,
        label_head,
        rects=rects,
        labels=y_labels + _x_labels(labels, slot),
        gridlines=lines,
    )


def line_chart(
    chart_id: str, title: str, labels: Sequence[str], name: str, values: Sequence[int]
) -> Chart:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_max(max(values, default=0))
    slot = plot_w / max(len(labels), 1)
    points = " ".join(
        f"{LEFT + slot * (i + 0.5):.1f},{TOP + plot_h * (1 - v / top):.1f}"
        for i, v in enumerate(values)
    )
    lines, y_labels = _y_axis(top, plot_h)
    series = [(name, values)]
    return _chart(
        chart_id,
        title,
        labels,
        series,
        "day",
        labels=y_labels + _x_labels(labels, slot),
        gridlines=lines,
        polyline=points,
    )


def row_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    name: str,
    values: Sequence[int],
    label_head: str,
) -> Chart:
    """Horizontal bars with their labels on the left (long labels are cut, the table keeps
    them whole)."""
    height = TOP + ROW_HEIGHT * max(len(labels), 1) + 4
    plot_w = WIDTH - ROW_LABEL - RIGHT - 40
    top = max(values, default=0) or 1
    rects, texts = [], []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + ROW_HEIGHT * i
        width = plot_w * value / top
        rects.append(
            Rect(
                ROW_LABEL,
                y + 3,
                round(max(width, 1.0), 1),
                ROW_HEIGHT - 6,
                0,
                f"{label}: {value:,}",
            )
        )
        short = label if len(label) <= 30 else label[:29] + "…"
        texts.append(Label(ROW_LABEL - 6, y + ROW_HEIGHT / 2 + 4, short, "end"))
        texts.append(
            Label(round(ROW_LABEL + width + 4, 1), y + ROW_HEIGHT / 2 + 4, f"{value:,}", "start")
        )
    series = [(name, values)]
    description = (
        f"{title}: "
        + ", ".join(f"{label} ({value:,})" for label, value in zip(labels, values, strict=True))
        + "."
        if labels
        else f"{title}: no data."
    )
    return _chart(
        chart_id,
        title,
        labels,
        series,
        label_head,
        description=description,
        height=height,
        rects=rects,
        labels=texts,
    )
