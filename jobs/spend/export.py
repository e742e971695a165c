"""The CSV behind the dashboard: every job of a scope and period, a line at a time.

Money stays integer micro-cents, with dollars beside it as an exact decimal; cells
that start like a spreadsheet formula are neutralised. A failed job and a cancelled one
state their refund alike: what PixelByte charged and gave back.
"""

import csv
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from .. import pricing
from ..models import ArchiveStatus
from ..rollup import REFUNDED

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
    "refunded_usd",
    "pixelbyte_job_id",
    "request_id",
    "video_url",  # the studio's own copy (empty when it keeps none)
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
        billed, refund = job.billed_micro_cents, refunded(job)
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
                in_dollars(billed),
                refund,
                in_dollars(refund),
                safe_cell(job.remote_id or ""),
                safe_cell(job.request_id),
                video_url(job),
            ]
        )


def in_dollars(micro_cents):
    """``225000`` → ``0.225``: exact, as a spreadsheet reads a number."""
    return f"{Decimal(micro_cents) / pricing.MICRO_CENTS_PER_DOLLAR:f}"


def refunded(job):
    """What PixelByte gave back for a failed or cancelled job: the refund it reported, else
    what it had charged (its cost, else our estimate). Nothing for any other job."""
    if job.status not in REFUNDED:
        return 0
    if job.refunded_micro_cents:
        return job.refunded_micro_cents
    return job.api_cost_micro_cents if job.api_cost_micro_cents is not None else job.estimated_micro_cents


def video_url(job):
    """The studio's address of the job's video, once it keeps the file."""
    if job.archive_status != ArchiveStatus.ARCHIVED:
        return ""
    return settings.PUBLIC_BASE_URL + reverse("jobs:video", args=[job.pk])
