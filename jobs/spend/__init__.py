"""Spend: who spent what, on what, when, and the CSV behind it.

``report`` gathers the figures of one scope (from ``jobs.access``) and period;
``page`` says them as a person reads them; ``chart`` draws them; ``export`` streams
the jobs behind them as CSV.
"""

from . import page
from .chart import chart, charts
from .export import csv_rows
from .report import (
    MAX_CUSTOM_DAYS,
    PERIODS,
    Period,
    Report,
    member_rows,
    period_for,
    report,
    scope_budgets,
)

__all__ = [
    "MAX_CUSTOM_DAYS",
    "PERIODS",
    "Period",
    "Report",
    "chart",
    "charts",
    "csv_rows",
    "member_rows",
    "page",
    "period_for",
    "report",
    "scope_budgets",
]
