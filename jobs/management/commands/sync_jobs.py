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
from jobs.models import Job, Status, Verdict, WebhookDelivery

log = logging.getLogger("jobs.sync")

# While a worker checks a job, nobody else will for this long.
LEASE = timedelta(seconds=120)
MAX_BACKOFF_SECONDS = 300
NOT_FOUND_RECHECK = timedelta(minutes=10)
# A transient failure is shown on the job page once it has happened this often in a row.
SHOW_AFTER_FAILURES = 3
# How long to keep looking for a job whose submit answer was lost.
RECONCILE_WINDOW = timedelta(minutes=10)
RECONCILE_RETRY = timedelta(seconds=30)
RECONCILE_PAGES = 5
UNSETTLED = (Status.SUBMITTING, Status.UNKNOWN)


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
                try:
                    _, _, pause = self.sync_once(batch=batch)
                    prune_deliveries(timezone.now())
                except Exception:
                    # A database hiccup must not end the worker; the next pass retries.
                    log.exception("sync pass failed; trying again shortly")
                    pause = 5
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
                try:
                    outcome, pause = self.check_job(job_id, lease, client)
                except Exception:
                    log.exception("job %s: check failed unexpectedly", job_id)
                    self.release(job_id, lease, timezone.now() + timedelta(seconds=60))
                    outcome = None
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
                Job.objects.filter(next_check_at__lte=now)
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
            if remote_id is None:
                return self.reconcile(job_id, lease, client, now), 0
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
        job, outcome = lifecycle.apply_update(
            job_id, lifecycle.Update.from_remote(remote), now=now, authoritative=True
        )
        Job.objects.filter(pk=job_id).update(last_checked_at=now, check_failures=0)
        # apply_update has already set the next check when something changed.
        self.release(job_id, lease, lifecycle.next_check_at(job, now))
        if job.status == "completed" and not job.output_url:
            log.warning("job %s is completed but PixelByte gave no video URL", job_id)
        return outcome, 0

    def _failed(self, job_id, lease, now, exc, at_least=timedelta(0)):
        """Back off after a failed check, and let the person see a problem that persists."""
        failures = Job.objects.values_list("check_failures", flat=True).get(pk=job_id) + 1
        backoff = timedelta(seconds=min(MAX_BACKOFF_SECONDS, 5 * 2 ** min(failures, 10)))
        fields = {"last_checked_at": now, "check_failures": min(failures, 1000)}
        if not exc.transient or failures >= SHOW_AFTER_FAILURES:
            fields.update(error_code=(exc.code or type(exc).__name__)[:64], error_message=exc.message)
        self.release(job_id, lease, now + max(backoff, at_least), **fields)

    # --- jobs whose submit answer never came ------------------------------------------

    def reconcile(self, job_id, lease, client, now):
        """Find a job PixelByte created for this row (its answer was lost), or give up on it.

        The API has no idempotency key; its list shows what it created around the
        time we sent the request. A created job that no row claims yet is adopted;
        after ``RECONCILE_WINDOW`` with none, the job was never created: it is
        marked not sent, which releases its budget. Nothing is ever re-sent.
        """
        job = Job.objects.get(pk=job_id)
        found = self._created_around(job, client)
        if found is not None:
            log.warning(
                "job %s: adopting %s, created by PixelByte when the answer was lost", job_id, found.job_id
            )
            _, outcome = lifecycle.apply_update(job_id, lifecycle.Update.from_remote(found), now=now)
            self.release(job_id, lease, now)
            return outcome
        if now - job.created_at < RECONCILE_WINDOW:
            self.release(job_id, lease, now + RECONCILE_RETRY, last_checked_at=now)
            return None
        Job.objects.filter(pk=job_id, remote_id__isnull=True, status__in=UNSETTLED).update(
            status=Status.REFUSED,
            error_code="NOT_SENT",
            error_message="PixelByte has no record of this job: it was never created and nothing was charged.",
            next_check_at=None,
            last_checked_at=now,
            updated_at=now,
        )
        log.warning("job %s: PixelByte never created it; marked not sent", job_id)
        return lifecycle.Outcome.APPLIED

    def _created_around(self, job, client):
        earliest = job.created_at - timedelta(seconds=60)
        latest = job.created_at + timedelta(seconds=settings.PIXELBYTE_SUBMIT_DEADLINE + 60)
        candidates, cursor = [], None
        for _ in range(RECONCILE_PAGES):
            page = client.list_jobs(limit=100, cursor=cursor, model=job.model_slug)
            candidates += [j for j in page.jobs if j.created_at and earliest <= j.created_at <= latest]
            oldest = min((j.created_at for j in page.jobs if j.created_at), default=None)
            if not page.has_more or not page.next_cursor or (oldest and oldest < earliest):
                break
            cursor = page.next_cursor
        claimed = set(
            Job.objects.filter(remote_id__in=[c.job_id for c in candidates]).values_list(
                "remote_id", flat=True
            )
        )
        free = [c for c in candidates if c.job_id and c.job_id not in claimed]
        return min(free, key=lambda c: abs(c.created_at - job.created_at), default=None)


def prune_deliveries(now, _last=[None]):  # noqa: B006 - a deliberate per-process memo
    """Forget refused deliveries after a week and all deliveries after 90 days (hourly at most)."""
    if _last[0] and now - _last[0] < timedelta(hours=1):
        return
    _last[0] = now
    refused = [
        v for v in Verdict.values if v.startswith("bad_") or v in (Verdict.MALFORMED, Verdict.TOO_LARGE)
    ]
    WebhookDelivery.objects.filter(received_at__lt=now - timedelta(days=7), verdict__in=refused).delete()
    WebhookDelivery.objects.filter(received_at__lt=now - timedelta(days=90)).delete()
