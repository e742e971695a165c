"""Poll PixelByte for jobs still in flight: the fallback when webhooks cannot reach us.

    python manage.py sync_jobs            # check every due job once
    python manage.py sync_jobs --watch    # keep going

Each pass claims due jobs with a conditional update (row locks with SKIP LOCKED
on PostgreSQL), so several copies can run side by side without checking a job
twice. A job is due when its ``next_check_at`` has passed: young jobs are
checked every few seconds, older ones up to once a minute. A 429 pauses the
worker for its Retry-After; other errors back off per job.
"""

import logging
import signal
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from jobs import lifecycle, pixelbyte
from jobs.models import Job

log = logging.getLogger("jobs.sync")

# While a worker checks a job, nobody else will for this long.
LEASE = timedelta(seconds=120)
MAX_BACKOFF_SECONDS = 300
NOT_FOUND_RECHECK = timedelta(minutes=10)


class Command(BaseCommand):
    help = "Check jobs in flight against PixelByte and apply what changed (--watch to keep going)."

    def add_arguments(self, parser):
        parser.add_argument("--watch", action="store_true", help="keep checking until stopped")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between passes (default 2)")
        parser.add_argument("--batch", type=int, default=50, help="jobs claimed per pass (default 50)")

    def handle(self, *args, watch=False, interval=2.0, batch=50, **options):
        self.stopping = False
        if not watch:
            checked, changed, _ = self.sync_once(batch=batch)
            self.stdout.write(f"Checked {checked} job(s); {changed} changed.")
            return
        signal.signal(signal.SIGTERM, self._stop)
        self.stdout.write(f"Watching jobs in flight every {interval:g} s (Ctrl+C to stop).")
        try:
            while not self.stopping:
                _, _, pause = self.sync_once(batch=batch)
                self._sleep(max(interval, pause))
        except KeyboardInterrupt:
            pass
        self.stdout.write("Stopped.")

    def _stop(self, *args):
        self.stopping = True

    def _sleep(self, seconds):
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))

    # --- one pass ----------------------------------------------------------------

    def sync_once(self, *, batch=50, client=None, now=None):
        """Check every due job once; return (checked, changed, seconds to pause)."""
        claimed = self.claim(now or timezone.now(), batch)
        if not claimed:
            return 0, 0, 0
        owns = client is None
        client = client or pixelbyte.client_from_settings()
        checked = changed = 0
        pause = 0
        try:
            for job_id, lease in claimed:
                if pause:
                    self.release(job_id, lease, timezone.now() + timedelta(seconds=pause))
                    continue
                outcome, pause = self.check_job(job_id, lease, client)
                checked += 1
                changed += outcome in (lifecycle.Outcome.APPLIED, lifecycle.Outcome.FILLED)
        finally:
            if owns:
                client.close()
        return checked, changed, pause

    def claim(self, now, batch):
        """Take up to ``batch`` due jobs for this worker; return [(id, lease)]."""
        lease = now + LEASE
        with transaction.atomic():
            ids = list(
                Job.objects.filter(next_check_at__lte=now, remote_id__isnull=False)
                .order_by("next_check_at")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch]
            )
            Job.objects.filter(pk__in=ids, next_check_at__lte=now).update(next_check_at=lease)
        return [(pk, lease) for pk in ids]

    def release(self, job_id, lease, when, **fields):
        """Hand a claimed job back with its next check time, unless someone moved it meanwhile."""
        Job.objects.filter(pk=job_id, next_check_at=lease).update(next_check_at=when, **fields)

    def check_job(self, job_id, lease, client):
        """Ask the API about one job and apply the answer.

        Returns (lifecycle outcome or None, seconds the whole worker should pause).
        """
        remote_id = Job.objects.values_list("remote_id", flat=True).get(pk=job_id)
        now = timezone.now()
        try:
            remote = client.get_job(remote_id)
        except pixelbyte.RateLimited as exc:
            seconds = min(
                exc.retry_after or settings.PIXELBYTE_DEFAULT_COOLDOWN, settings.PIXELBYTE_MAX_COOLDOWN
            )
            log.warning("PixelByte asked to slow down: pausing checks for %s s", seconds)
            self.release(job_id, lease, now + timedelta(seconds=seconds))
            return None, seconds
        except pixelbyte.NotFound as exc:
            log.warning("job %s: PixelByte does not know %s (%s)", job_id, remote_id, exc.message)
            self._failed(job_id, lease, now, exc, at_least=NOT_FOUND_RECHECK)
            return None, 0
        except pixelbyte.ApiError as exc:
            log.warning("job %s: status check failed: %s", job_id, exc.message)
            self._failed(job_id, lease, now, exc)
            return None, 0
        job, outcome = lifecycle.apply_update(job_id, lifecycle.Update.from_remote(remote), now=now)
        self.release(job_id, lease, lifecycle.next_check_at(job, now), last_checked_at=now, check_failures=0)
        if job.status == "completed" and not job.output_url:
            log.warning("job %s is completed but PixelByte gave no video URL", job_id)
        return outcome, 0

    def _failed(self, job_id, lease, now, exc, at_least=timedelta(0)):
        failures = Job.objects.values_list("check_failures", flat=True).get(pk=job_id) + 1
        backoff = timedelta(seconds=min(MAX_BACKOFF_SECONDS, 5 * 2 ** min(failures, 10)))
        self.release(
            job_id,
            lease,
            now + max(backoff, at_least),
            last_checked_at=now,
            check_failures=min(failures, 1000),
        )
