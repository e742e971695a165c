"""Spend: who spent what, on what, when, and the CSV behind it.

``report`` gathers the figures of one scope (from ``jobs.access``) and period;
``chart`` draws them; ``export`` streams the jobs behind them as CSV.
"""

from .chart import chart
from .export import csv_rows
from .report import MAX_CUSTOM_DAYS, PERIODS, Period, Report, member_rows, period_for, report

__all__ = [
    "MAX_CUSTOM_DAYS",
    "PERIODS",
    "Period",
    "Report",
    "chart",
    "csv_rows",
    "member_rows",
    "period_for",
    "report",
]
