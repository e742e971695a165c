"""The dashboard's daily chart, drawn on the server as SVG: the geometry only.

templates/jobs/spend.html turns these numbers into elements. The chart is drawn twice,
wide for screens and narrow for phones (CSS shows one): an SVG scales its text with
its width, so one drawing cannot keep its labels readable on both.
"""

import math
from dataclasses import dataclass

from .report import CENT


@dataclass(frozen=True)
class Size:
    name: str
    width: int
    height: int
    font: int  # the labels' size, in the drawing's units (see static/css/pages.css)
    most_labels: int  # day labels under the bars, at most this many


WIDE = Size("wide", 720, 240, 12, 8)
NARROW = Size("narrow", 360, 250, 14, 4)
PAD_R, PAD_B, PAD_T = 8, 30, 24


def charts(result, money):
    """The chart at every size; ``money`` formats micro-cents as the page shows them."""
    return [chart(result, money, size) for size in (WIDE, NARROW)]


def chart(result, money, size=WIDE):
    """Geometry for the daily bars, the running total, the budget and the projection."""
    days = result.daily
    total = sum(spend for _, spend, _ in days)
    peak = nice_ceiling(max([total, result.budget or 0, result.projection or 0, CENT]))
    ticks = [(peak * k // 4, money(peak * k // 4)) for k in range(5)]
    left = 10 + math.ceil(_text_width(max(len(label) for _, label in ticks), size.font))
    bottom = size.height - PAD_B
    plot_h = bottom - PAD_T
    step = (size.width - left - PAD_R) / max(len(days), 1)

    def x(index):
        return round(left + (index + 0.5) * step, 1)

    def y(value):
        return round(PAD_T + plot_h - plot_h * value / peak, 1)

    running = _running_total(result)
    return {
        "name": size.name,
        "width": size.width,
        "height": size.height,
        "left": left,
        "right": size.width - PAD_R,
        "bottom": bottom,
        "label_y": size.height - 9,
        "bars": _bars(days, step, left, y, bottom, money),
        "running": " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(running)),
        "ticks": [{"y": y(value), "label": label} for value, label in ticks],
        "labels": _day_labels(days, x, size),
        "budget_y": y(result.budget) if result.budget else None,
        "projection": _projection(result, running, x, y),
    }


def _running_total(result):
    """The total spent by the end of each day, up to today (the line stops there)."""
    running, total = [], 0
    for day, spend, _ in result.daily:
        total += spend
        if result.today is None or day <= result.today:
            running.append(total)
    return running


def _projection(result, running, x, y):
    """The dotted line from today's total to the month-end projection (None without one,
    or on the month's last day, when the projection is what has been spent)."""
    if result.projection is None or not running or len(running) >= len(result.daily):
        return None
    today, end = len(running) - 1, len(result.daily) - 1
    return {"x1": x(today), "y1": y(running[-1]), "x2": x(end), "y2": y(result.projection)}


def _bars(days, step, left, y, bottom, money):
    bars = []
    for i, (day, spend, videos) in enumerate(days):
        top = y(spend)
        bars.append(
            {
                "x": round(left + i * step + step * 0.15, 1),
                "y": top,
                "w": round(max(step * 0.7, 1), 1),
                "h": round(bottom - top, 1),
                "title": f"{day:%b %-d}: {money(spend)} ({videos} video{'s' if videos != 1 else ''})",
            }
        )
    return bars


def _day_labels(days, x, size):
    """Every day's date under a short period; a handful of them under a long one. A label
    that would run past the right edge ends at it instead."""
    every = max(math.ceil(len(days) / size.most_labels), 1)
    labels = []
    for i, (day, _, _) in enumerate(days):
        if i % every:
            continue
        text, at = f"{day:%b %-d}", x(i)
        if at + _text_width(len(text), size.font) / 2 > size.width - 2:
            labels.append({"x": size.width - 2, "text": text, "anchor": "end"})
        else:
            labels.append({"x": at, "text": text, "anchor": "middle"})
    return labels


def _text_width(characters, font):
    """About how wide a label of ``characters`` is in the system font (digits are ~0.6 em)."""
    return characters * font * 0.6


def nice_ceiling(value):
    """The top of the axis: four round steps (1, 2 or 5 × 10^k cents each) that reach ``value``."""
    step = CENT
    while True:
        for factor in (1, 2, 5):
            if step * factor * 4 >= value:
                return step * factor * 4
        step *= 10
