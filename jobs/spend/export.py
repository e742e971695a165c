"""The CSV behind the dashboard: every job of a scope and period, a line at a time.

Money stays integer micro-cents, with dollars beside it as an exact decimal; cells
that start like a spreadsheet formula are neutralised.
"""

import csv
from decimal import Decimal

from django.utils import timezone

from .. import pricing

CSV_COLUMNS = [
    "created_at",
    "user",
    "team",
    "project",
    "prompt",
    "model",
    "quality",
    "duration_s",
    "aspect_ratio",
    "seed",
    "status",
    "estimated_micro_cents",
    "api_cost_micro_cents",
    "billed_micro_cents",
    "billed_usd",
    "refunded_micro_cents",
    "pixelbyte_job_id",
    "request_id",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value):
        return value


def csv_rows(jobs, zone):
    """The CSV, a line at a time, reading the jobs in chunks (never all at once)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    rows = jobs.select_related("owner", "team").order_by("created_at", "pk").iterator(chunk_size=2000)
    for job in rows:
        billed = job.billed_micro_cents
        yield writer.writerow(
            [
                safe_cell(timezone.localtime(job.created_at, zone).isoformat()),
                safe_cell(job.owner.get_username()),
                safe_cell(job.team.name if job.team else ""),
                safe_cell(job.project),
                safe_cell(job.prompt),
                safe_cell(job.model_slug),
                safe_cell(job.quality),
                job.duration,
                safe_cell(job.aspect_ratio),
                "" if job.seed is None else job.seed,
                job.status,
                job.estimated_micro_cents,
                "" if job.api_cost_micro_cents is None else job.api_cost_micro_cents,
                billed,
                f"{Decimal(billed) / pricing.MICRO_CENTS_PER_DOLLAR:f}",
                job.refunded_micro_cents,
                safe_cell(job.remote_id or ""),
                safe_cell(job.request_id),
            ]
        )
