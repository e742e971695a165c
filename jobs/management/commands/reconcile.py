"""Compare PixelByte's job list with the studio's jobs: the whole bill.

    python manage.py reconcile                     # back to the first of last month
    python manage.py reconcile --since 2026-03-01

Lists the jobs made with the studio's key outside the studio (one id a line), fixes
statuses the studio has behind PixelByte (through the lifecycle) and flags charges that
differ from the catalog; see ``jobs.reconcile``. The worker runs it once a day.
"""

import re
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jobs import pixelbyte, reconcile

DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class Command(BaseCommand):
    help = "Compare PixelByte's job list with the studio's jobs: outside jobs, status and price differences."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            metavar="YYYY-MM-DD",
            help="read PixelByte's jobs back to this day, in DISPLAY_TIME_ZONE (default: the first of last month)",
        )

    def handle(self, *args, since=None, **options):
        day = parse_day(since) if since is not None else None
        try:
            result = reconcile.reconcile(since=day)
        except pixelbyte.ApiError as exc:
            raise CommandError(f"Nothing more was checked: {one_line(exc.message)}") from None
        self.print_result(result)

    def print_result(self, result):
        zone = reconcile.display_zone()
        for job in result.outside:
            new = "  (new)" if job.job_id in result.new_outside else ""
            created = timezone.localtime(job.created_at, zone)
            self.stdout.write(f"{job.job_id}  {job.status or 'unknown'}  {created:%Y-%m-%d %H:%M %Z}{new}")
        for job_id, was, now in result.fixed:
            self.stdout.write(f"Fixed video #{job_id}: {was} -> {now}")
        for row in result.drifts:
            self.stdout.write(f"Price drift: {reconcile.drift_line(row)}")
        self.stdout.write(result.summary())


def parse_day(value):
    """The date ``--since`` names; CommandError unless it is YYYY-MM-DD, not in the future."""
    try:
        day = date.fromisoformat(value) if DAY.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None:
        raise CommandError(f"--since must be a day written YYYY-MM-DD, like 2026-03-01 (not {value[:40]!r}).")
    if day > timezone.localdate(timezone=reconcile.display_zone()):
        raise CommandError(f"--since {day} is in the future; give today or an earlier day.")
    return day


def one_line(text):
    return " ".join(str(text).split())
