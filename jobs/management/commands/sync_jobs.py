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
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs import (
    alerts,
    approvals,
    archive,
    callbacks,
    lifecycle,
    outbox,
    pixelbyte,
    reconcile,
    rollup,
    throttle,
)
from jobs.models import (
    ANONYMOUS_VERDICTS,
    Job,
    RateWindow,
    SignInThrottle,
    Status,
    WebhookDelivery,
    WebhookTally,
)

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
# A lost submit is matched only with a job PixelByte created this close to the row's
# recording: the request leaves within milliseconds of it, connect retries add at most
# ~8 s, and the clocks of two synchronised servers agree within a second or two.
MATCH_BEFORE = timedelta(seconds=5)
MATCH_AFTER = timedelta(seconds=20)
# An ambiguous row is looked at again this often, in case the other claimant settles.
DECISION_RECHECK = timedelta(minutes=10)
# Submits PixelByte answered (2xx) in a way the studio could not use: the job exists, so
# finding none in the list never means "not sent".
ANSWERED_CODES = frozenset({"BadResponse", "UNSTORABLE_JOB_ID", "DUPLICATE_JOB_ID"})


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
            spend_control(timezone.now())
            # Job callbacks, several receivers at a time; each costs at most one deadline.
            callbacks.run_pass(timezone.now())
            prune_deliveries(timezone.now())
            return
        signal.signal(signal.SIGTERM, self._stop)
        # Copying outputs runs beside the checks, so a long download never delays them.
        archiver = archive.Loop()
        archiver.start()
        # Job callbacks too, on threads of their own: a receiver that never answers holds
        # up neither the checks nor the other receivers.
        deliverer = callbacks.Loop()
        deliverer.start()
        self.stdout.write(f"Watching jobs in flight every {interval:g} s (Ctrl+C to stop).")
        pruned_at = None
        try:
            while not self.stopping:
                try:
                    _, _, pause = self.sync_once(batch=batch)
                    spend_control(timezone.now())
                    pruned_at = prune_deliveries(timezone.now(), last=pruned_at)
                    verify_spend_daily()
                    reconcile.run_daily()
                except Exception:
                    # A database hiccup must not end the worker; the next pass retries.
                    log.exception("sync pass failed; trying again shortly")
                    pause = 5
                self._sleep(max(interval, pause))
        except KeyboardInterrupt:
            pass
        finally:
            deliverer.stop()
            archiver.stop()
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
        wait = throttle.pause_remaining()
        if wait:  # PixelByte asked every caller to wait, submits and checks alike
            return 0, 0, wait
        claimed = self.claim(now or timezone.now(), batch)
        if not claimed:
            return 0, 0, 0
        with pixelbyte.client_or_default(client) as api:
            return self._check_all(claimed, api)

    def _check_all(self, claimed, client):
        checked = changed = pause = 0
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
            changed += bool(outcome and outcome.changed)
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
            seconds = throttle.pause(exc.retry_after)
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
        job, outcome = lifecycle.apply_update(job_id, remote, now=now, authoritative=True)
        Job.objects.filter(pk=job_id).update(last_checked_at=now, check_failures=0)
        # apply_update has already set the next check when something changed.
        self.release(job_id, lease, lifecycle.next_check_at(job, now))
        if job.status == Status.COMPLETED and not job.output_url:
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
        """Find the job PixelByte created for this row (its answer was lost), or give up on it.

        The API has no idempotency key and its list shows neither inputs nor request ids,
        so time is the only key: a listed job is adopted only when the match cannot be
        anyone else's (see ``_unambiguous``). After ``RECONCILE_WINDOW`` with no candidate
        at all, the job was never created: it is marked not sent, which releases its
        budget. With candidates but no certain match it stays *outcome unknown*, still
        counting in spend, marked for staff to decide. Nothing is ever re-sent.
        """
        job = Job.objects.get(pk=job_id)
        candidates = self._candidates(job, client)
        match = self._unambiguous(job, candidates)
        if match is not None:
            return self._adopt(job, match, lease, now)
        if now - job.created_at < RECONCILE_WINDOW:
            self.release(job_id, lease, now + RECONCILE_RETRY, last_checked_at=now)
            return None
        if not candidates and job.error_code not in ANSWERED_CODES:
            return self._not_sent(job, now)
        return self._needs_decision(job, candidates, now)

    def _candidates(self, job, client):
        """Jobs of this model PixelByte created close to this row's send, that no row owns."""
        earliest, latest = job.created_at - MATCH_BEFORE, job.created_at + MATCH_AFTER
        found, cursor = [], None
        for _ in range(RECONCILE_PAGES):
            page = client.list_jobs(limit=100, cursor=cursor, model=job.model_slug)
            found += [
                j
                for j in page.jobs
                if j.job_id and j.created_at and earliest <= j.created_at <= latest
                if j.model in ("", job.model_slug)
            ]
            oldest = min((j.created_at for j in page.jobs if j.created_at), default=None)
            if not page.has_more or not page.next_cursor or (oldest and oldest < earliest):
                break
            cursor = page.next_cursor
        owned = set(
            Job.objects.filter(remote_id__in=[j.job_id for j in found]).values_list("remote_id", flat=True)
        )
        return list({j.job_id: j for j in found if j.job_id not in owned}.values())

    def _unambiguous(self, job, candidates):
        """The one candidate, if this row could claim exactly one and no other unsettled row
        could claim it too (two lost submits a second apart must not swap their videos)."""
        if len(candidates) != 1:
            return None
        only = candidates[0]
        rivals = (
            Job.objects.filter(
                remote_id__isnull=True, status__in=lifecycle.UNSETTLED, model_slug=job.model_slug
            )
            .filter(
                created_at__gte=only.created_at - MATCH_AFTER, created_at__lte=only.created_at + MATCH_BEFORE
            )
            .exclude(pk=job.pk)
        )
        return None if rivals.exists() else only

    def _adopt(self, job, found, lease, now):
        try:
            _, outcome = lifecycle.apply_update(job.pk, found, now=now)
        except IntegrityError:
            # Another row took that id between the look-up and now: it is theirs.
            self.release(job.pk, lease, now + RECONCILE_RETRY, last_checked_at=now)
            return None
        log.warning(
            "job %s: adopting %s, created by PixelByte when the answer was lost", job.pk, found.job_id
        )
        self.release(job.pk, lease, now)
        return outcome

    def _not_sent(self, job, now):
        message = "PixelByte has no record of this job: it was never created and nothing was charged."
        if lifecycle.mark_not_sent(job.pk, code="NOT_SENT", message=message, now=now):
            log.warning("job %s: PixelByte never created it; marked not sent", job.pk)
        return lifecycle.Outcome.APPLIED

    def _needs_decision(self, job, candidates, now):
        ids = ", ".join(sorted(c.job_id for c in candidates)[:5])
        if candidates:
            found = f"PixelByte created {len(candidates)} job(s) around the time this one was sent ({ids})"
            message = f"{found} and the studio cannot tell which, if any, is this one."
        else:
            message = (
                "PixelByte accepted this job, but its answer could not be used and its list shows no match."
            )
        message += " It counts in spend until a member of staff decides."
        if job.error_code != lifecycle.NEEDS_DECISION:
            log.warning("job %s: outcome unknown, needs a decision between %s", job.pk, ids)
        lifecycle.needs_decision(job.pk, message, recheck_at=now + DECISION_RECHECK, now=now)
        return None


def spend_control(now):
    """Each pass: end approval requests nobody decided in time, evaluate every budget's
    alerts, then deliver what is due (so a line crossed is told within the same pass)."""
    approvals.expire_due(now)
    alerts.run_pass(now)
    outbox.deliver_due(now)


# --watch prunes the webhook log this often; a one-shot run (from cron, say) every time.
PRUNE_EVERY = timedelta(hours=1)
# Requests refused before they reached a job: their counts, and the sample kept of them.
REFUSED_KEPT = timedelta(days=7)


def prune_deliveries(now, last=None):
    """Forget old webhook log rows, unless the previous pass (at ``last``) was under
    ``PRUNE_EVERY`` ago; return when the log was last pruned. Deliveries for our jobs are
    kept ``WEBHOOK_LOG_DAYS``, refused samples and the refused counts ``REFUSED_KEPT``; sign-in
    counts whose window has passed go too."""
    if last is not None and now - last < PRUNE_EVERY:
        return last
    days = settings.WEBHOOK_LOG_DAYS
    if days < 1:
        # Zero or less would empty the log on every pass: stop loudly instead.
        raise ImproperlyConfigured(f"WEBHOOK_LOG_DAYS must be at least 1, not {days}.")
    WebhookDelivery.objects.filter(received_at__lt=now - timedelta(days=days)).delete()
    refused_before = now - REFUSED_KEPT
    WebhookDelivery.objects.filter(verdict__in=ANONYMOUS_VERDICTS, received_at__lt=refused_before).delete()
    WebhookTally.objects.filter(minute__lt=refused_before).delete()
    SignInThrottle.objects.filter(expires_at__lt=now).delete()
    RateWindow.objects.filter(minute__lt=int(now.timestamp() // 60) - 1).delete()
    return now


VERIFY_KEY = "spend:verified"
VERIFY_EVERY = timedelta(days=1)


def verify_spend_daily():
    """Once a day across every worker (a shared cache key): compare the spend rollup with
    the jobs. A difference is logged as an error and left for ``verify_spend --fix``, so a
    person sees what was wrong before it is rebuilt."""
    if not cache.add(VERIFY_KEY, True, timeout=int(VERIFY_EVERY.total_seconds())):
        return None
    found = rollup.differences()
    if found:
        log.error(
            "the spend rollup differs from the jobs in %s holder-month(s); run `manage.py verify_spend`",
            len(found),
        )
    return found
