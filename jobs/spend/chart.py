"""The dashboard's daily chart, drawn on the server as SVG: the geometry only.

templates/jobs/spend.html turns these numbers into elements.
"""

from .. import pricing
from .report import CENT

CHART_W, CHART_H, PAD_L, PAD_B, PAD_T = 720, 240, 64, 28, 16


def chart(result):
    """Geometry for the daily bars, the running total, the budget and the projection."""
    days = result.daily
    total = sum(spend for _, spend, _ in days)
    peak = nice_ceiling(max([total, result.budget or 0, result.projection or 0, CENT]))
    plot_h = CHART_H - PAD_B - PAD_T
    step = (CHART_W - PAD_L - 8) / max(len(days), 1)

    def y(value):
        return round(PAD_T + plot_h - plot_h * value / peak, 1)

    running = _running_total(result)
    return {
        "width": CHART_W,
        "height": CHART_H,
        "left": PAD_L,
        "right": CHART_W - 8,
        "bottom": PAD_T + plot_h,
        "bars": _bars(days, step, y, PAD_T + plot_h),
        "running": " ".join(f"{round(PAD_L + (i + 0.5) * step, 1)},{y(v)}" for i, v in enumerate(running)),
        "ticks": [{"y": y(peak * k // 4), "label": pricing.format_dollars(peak * k // 4)} for k in range(5)],
        "labels": _day_labels(days, step),
        "budget_y": y(result.budget) if result.budget else None,
        "projection_y": y(result.projection) if result.projection is not None else None,
    }


def _running_total(result):
    """The total spent by the end of each day, up to today (the line stops there)."""
    running, total = [], 0
    for day, spend, _ in result.daily:
        total += spend
        if result.today is None or day <= result.today:
            running.append(total)
    return running


def _bars(days, step, y, bottom):
    bars = []
    for i, (day, spend, count) in enumerate(days):
        top = y(spend)
        bars.append(
            {
                "x": round(PAD_L + i * step + step * 0.15, 1),
                "y": top,
                "w": round(max(step * 0.7, 1), 1),
                "h": round(bottom - top, 1),
                "title": f"{day:%b %-d}: {pricing.format_dollars(spend)} ({count} job{'s' if count != 1 else ''})",
            }
        )
    return bars


def _day_labels(days, step):
    """Every day's date under a short period; about six of them under a long one."""
    return [
        {"x": round(PAD_L + (i + 0.5) * step, 1), "text": f"{day:%b %-d}"}
        for i, (day, _, _) in enumerate(days)
        if len(days) <= 10 or i % max(len(days) // 6, 1) == 0
    ]


def nice_ceiling(value):
    """The top of the axis: four round steps (1, 2 or 5 × 10^k cents each) that reach ``value``."""
    step = CENT
    while True:
        for factor in (1, 2, 5):
            if step * factor * 4 >= value:
                return step * factor * 4
        step *= 10
