"""Copy into the studio's storage every completed job's outputs it does not hold yet.

    python manage.py archive_outputs

Run it once after upgrading to a version that archives: jobs completed before have no copy
and are queued here. It also tries again jobs the worker gave up on for a reason that may
have changed (a video over ARCHIVE_MAX_BYTES). It claims jobs exactly as the worker does,
so it is safe beside a running ``sync_jobs --watch`` and safe to run twice.
"""

import time

from django.core.management.base import BaseCommand
from django.utils import timezone

from jobs import archive
from jobs.models import ArchiveStatus, Job, Status

# Without a terminal, a progress line at most this often (seconds), so a log stays short.
PLAIN_EVERY = 10.0


class Command(BaseCommand):
    help = "Archive the outputs of every completed job the studio holds no copy of yet."

    def handle(self, *args, **options):
        queued = archive.queue_unarchived()
        now = timezone.now()
        to_do = archive.due(now).count()
        waiting = unarchived().count() - to_do
        self.stdout.write(f"{to_do} job(s) to archive ({queued} newly queued).")
        progress = Progress(self.stdout, to_do)
        try:
            tally = archive.run_pass(on_chunk=progress.received, on_done=progress.job_done)
        except KeyboardInterrupt:
            progress.finish()
            self.stdout.write("Interrupted: the job in progress is due again; nothing half-copied was kept.")
            return
        progress.finish()
        self.stdout.write(summary(tally, waiting))


def unarchived():
    return Job.objects.filter(
        status=Status.COMPLETED, archive_status__in=(ArchiveStatus.NONE, ArchiveStatus.QUEUED)
    )


def summary(tally, waiting):
    """One line: what became of the jobs; ``waiting`` were left to the worker."""
    return (
        f"Archived {tally[archive.Outcome.ARCHIVED]}, lost at source {tally[archive.Outcome.LOST]}, "
        f"failed {tally[archive.Outcome.FAILED]}, skipped {tally[archive.Outcome.SKIPPED] + waiting}."
    )


def human(size):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


class Progress:
    """Jobs done out of those to do, and bytes copied: one line rewritten in place on a
    terminal, a plain line now and then otherwise (a log or a pipe)."""

    WIDTH = 30

    def __init__(self, stdout, total):
        self.stdout, self.total = stdout, total
        self.tty = stdout.isatty()
        self.done = self.bytes = 0
        self.shown_at, self.last = time.monotonic(), ""

    def received(self, size):
        self.bytes += size
        self.show()

    def job_done(self, job_id, outcome):
        self.done += 1
        self.show(force=self.tty)

    def line(self):
        filled = self.WIDTH * min(self.done, self.total) // self.total if self.total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return f"[{bar}] {self.done}/{self.total} jobs, {human(self.bytes)}"

    def show(self, force=False):
        now = time.monotonic()
        # Redrawing a terminal line costs little; a log line every chunk would flood it.
        if force or now - self.shown_at >= (0.1 if self.tty else PLAIN_EVERY):
            self.write(self.line())
            self.shown_at = now

    def write(self, line):
        if self.tty:
            self.stdout.write("\r" + line, ending="")
            self.stdout.flush()
        else:
            self.stdout.write(line)
        self.last = line

    def finish(self):
        """The final count, and an end to the rewritten line."""
        if self.total and self.line() != self.last:
            self.write(self.line())
        if self.tty and self.last:
            self.stdout.write("")
