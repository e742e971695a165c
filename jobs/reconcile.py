"""The whole bill: PixelByte's job list compared with the studio's jobs (``manage.py reconcile``).

PixelByte's list (``GET /v1/jobs``, newest first, one walk per catalog model) is read back
to a day, by default the first of last month in ``DISPLAY_TIME_ZONE``. Then:

- a listed job the studio never sent (made with the same key elsewhere) is recorded as an
  ``OutsideJob``: part of the bill, in no person's or team's budget or spend. One that an
  unsettled studio row (still sending, or its answer lost) could yet claim is held back:
  the sync worker may still adopt it, and it is looked at again on the next run;
- a listed job whose status the studio has behind PixelByte's is read back with
  ``GET /v1/jobs/{id}`` and applied through the lifecycle, as the sync worker does. A
  terminal job is never touched (a disagreement is only logged), and a status the
  contract does not know is never applied;
- a studio job in the window that PixelByte charged other than the catalog's price for its
  options is counted per option combination in ``PriceDrift`` (the count of the latest
  run's window; a combination no longer seen goes back to zero).

The list is read to the end before anything is written, so an API error while walking it
changes nothing. The list carries no prices: what outside jobs cost is only known as the
range the catalog allows (``spend_notes``).
"""

import logging
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from . import lifecycle, pixelbyte, pricing, rollup, throttle
from .models import TERMINAL, Job, OutsideJob, PriceDrift

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# Guards on the walk: a million jobs is far beyond any month of the studio's; a cursor seen
# twice would otherwise loop for ever.
MAX_PAGES = 10_000
# Remote ids are looked up in chunks of this many (SQLite's bound on query parameters).
LOOKUP_CHUNK = 500
# A listed job is held back while a studio row still sending (or with its answer lost) was
# recorded or last moved this close to the job's creation: it may be that row's job.
CLAIM_BEFORE = timedelta(minutes=10)
CLAIM_AFTER = timedelta(minutes=1)
# Several jobs drifting the same way is a pattern worth a warning; one is noise.
DRIFT_WARN_AT = 2
# Outside jobs PixelByte refunded cost nothing: ``rollup.REFUNDED``.

# What a later run refreshes on an outside job (its own columns: a studio job's status
# changes only in the lifecycle).
OUTSIDE_REFRESHED = ("status", "completed_at", "last_seen_at")

DAILY_KEY = "reconcile:daily"
DAILY_EVERY = timedelta(days=1)
# After a failed daily run the next worker pass tries again this much later, not at once.
DAILY_RETRY = timedelta(hours=1)


@dataclass
class Result:
    """What one run found and did."""

    since: datetime
    listed: int = 0
    matched: int = 0
    outside: list = field(default_factory=list)  # [pixelbyte.RemoteJob], newest first
    new_outside: set = field(default_factory=set)  # remote ids first seen by this run
    held_back: int = 0
    fixed: list = field(default_factory=list)  # [(job id, old status, new status)]
    disagree: list = field(default_factory=list)  # [(job id, ours, theirs)] on terminal jobs
    drifted: int = 0  # studio jobs charged other than the catalog
    drifts: list = field(default_factory=list)  # [PriceDrift] seen by this run

    def summary(self):
        text = (
            f"Since {self.since:%Y-%m-%d} ({self.since.tzinfo}): {self.listed} job(s) at PixelByte, "
            f"{self.matched} matched, {len(self.outside)} outside the studio "
            f"({len(self.new_outside)} new), {len(self.fixed)} fixed, {self.drifted} drifted."
        )
        if self.held_back:
            text += (
                f" {self.held_back} held back (a studio job whose answer is not in yet may be one of them)."
            )
        if self.disagree:
            text += f" {len(self.disagree)} finished job(s) disagree with PixelByte (left as they are)."
        return text


# --- the run ------------------------------------------------------------------------


def display_zone():
    return zoneinfo.ZoneInfo(settings.DISPLAY_TIME_ZONE)


def start_of(day):
    """The first instant of ``day`` in DISPLAY_TIME_ZONE."""
    return datetime.combine(day, time.min, tzinfo=display_zone())


def default_since(now):
    """The first day of last month, in DISPLAY_TIME_ZONE."""
    this_month = timezone.localdate(now, display_zone()).replace(day=1)
    return (this_month - timedelta(days=1)).replace(day=1)


def reconcile(since=None, *, client=None, now=None):
    """Compare PixelByte's jobs created since the day ``since`` (a date; default
    ``default_since``) with the studio's; return a ``Result``. Raises
    ``pixelbyte.ApiError`` when PixelByte cannot be read."""
    now = now or timezone.now()
    result = Result(since=start_of(since or default_since(now)))
    with pixelbyte.client_or_default(client) as api:
        # One entry per id, even if a shaky list repeated one across pages.
        listed = list(
            {job.job_id: job for slug in pricing.MODELS for job in walk(api, slug, result.since)}.values()
        )
        result.listed = len(listed)
        ours = studio_jobs([job.job_id for job in listed])
        result.matched = sum(job.job_id in ours for job in listed)
        with transaction.atomic():
            record_outside([job for job in listed if job.job_id not in ours], result, now)
            record_drift(result, now)
        fix_statuses(api, [(ours[job.job_id], job) for job in listed if job.job_id in ours], result, now)
    return result


def walk(client, slug, since):
    """Every job of model ``slug`` PixelByte lists as created at or after ``since``."""
    found, cursor, seen = [], None, set()
    for _ in range(MAX_PAGES):
        page = client.list_jobs(limit=PAGE_SIZE, cursor=cursor, model=slug)
        found += [_with_model(job, slug) for job in page.jobs if _belongs(job, slug, since)]
        if not page.has_more or not page.next_cursor or _older_than(page, since):
            return found
        if page.next_cursor in seen:
            raise pixelbyte.BadResponse(
                "PixelByte's job list sent the same page twice (a cursor loop); the walk was stopped "
                "and nothing was changed. Try again later."
            )
        seen.add(page.next_cursor)
        cursor = page.next_cursor
    raise pixelbyte.BadResponse(
        f"PixelByte's job list ran past {MAX_PAGES} pages; nothing was changed. Try a later --since."
    )


def _belongs(job, slug, since):
    # No id or no creation time: nothing the studio could match or place in the window.
    return bool(job.job_id and job.created_at and job.created_at >= since and job.model in ("", slug))


def _with_model(job, slug):
    return job if job.model else replace(job, model=slug)


def _older_than(page, since):
    """Whether the page reaches before ``since`` (the list is newest first)."""
    return any(job.created_at and job.created_at < since for job in page.jobs)


def studio_jobs(remote_ids):
    """{remote id: Job} for the ids the studio sent (their id and status only)."""
    found = {}
    for i in range(0, len(remote_ids), LOOKUP_CHUNK):
        chunk = remote_ids[i : i + LOOKUP_CHUNK]
        for job in Job.objects.filter(remote_id__in=chunk).only("pk", "remote_id", "status"):
            found[job.remote_id] = job
    return found


# --- jobs made outside the studio -------------------------------------------------------


def record_outside(candidates, result, now):
    """Upsert the listed jobs the studio never sent, except those an unsettled row may
    yet claim; forget outside rows the studio has since claimed (staff named them)."""
    claimable = _claimable_times()
    outside = [job for job in candidates if not _may_be_claimed(job, claimable)]
    result.held_back = len(candidates) - len(outside)
    result.outside = outside
    ids = [job.job_id for job in outside]
    known = set()
    for i in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[i : i + LOOKUP_CHUNK]
        known |= set(OutsideJob.objects.filter(remote_id__in=chunk).values_list("remote_id", flat=True))
    result.new_outside = set(ids) - known
    OutsideJob.objects.bulk_create(
        [_outside_row(job, now) for job in outside],
        update_conflicts=True,
        unique_fields=["remote_id"],
        update_fields=OUTSIDE_REFRESHED,
        batch_size=LOOKUP_CHUNK,
    )
    _forget_claimed()


def _outside_row(job, now):
    return OutsideJob(
        remote_id=job.job_id,
        model_slug=job.model,
        status=job.status,
        created_at=job.created_at,
        completed_at=job.completed_at,
        first_seen_at=now,
        last_seen_at=now,
    )


def _claimable_times():
    """(model, recorded, last moved) of every studio row sent without a known remote id."""
    return list(
        Job.objects.filter(remote_id__isnull=True, status__in=lifecycle.UNSETTLED).values_list(
            "model_slug", "created_at", "updated_at"
        )
    )


def _may_be_claimed(job, claimable):
    earliest, latest = job.created_at - CLAIM_BEFORE, job.created_at + CLAIM_AFTER
    return any(
        slug == job.model and (earliest <= created <= latest or earliest <= moved <= latest)
        for slug, created, moved in claimable
    )


def _forget_claimed():
    """An outside row whose id a studio job now has (adopted by staff) is not outside."""
    claimed = Job.objects.filter(remote_id__in=OutsideJob.objects.values("remote_id"))
    OutsideJob.objects.filter(remote_id__in=claimed.values("remote_id")).delete()


# --- status differences -------------------------------------------------------------------


def fix_statuses(client, pairs, result, now):
    """For each (studio job, listed job) whose status differs, read the job back and apply
    it through the lifecycle; a terminal studio job is left alone."""
    for job, listed in pairs:
        if listed.status == job.status or listed.status not in lifecycle.REMOTE_STATUSES:
            continue
        if job.status in TERMINAL:
            log.warning(
                "job %s is %s, but PixelByte lists %s as %s; left as it is",
                job.pk,
                job.status,
                listed.job_id,
                listed.status,
            )
            result.disagree.append((job.pk, job.status, listed.status))
            continue
        if job.status in lifecycle.TRANSITIONS and lifecycle.may_move(job.status, listed.status):
            _fix(client, job, result, now)


def _fix(client, job, result, now):
    fresh = client.get_job(job.remote_id)
    updated, outcome = lifecycle.apply_update(job.pk, fresh, now=now, authoritative=True)
    if outcome == lifecycle.Outcome.APPLIED:
        log.warning("job %s was %s; PixelByte says %s: fixed", job.pk, job.status, updated.status)
        result.fixed.append((job.pk, job.status, updated.status))


# --- price drift ----------------------------------------------------------------------


def record_drift(result, now):
    """Count, per option combination, the studio's jobs in the window that PixelByte
    charged other than the current catalog's price; store the counts in ``PriceDrift``."""
    found = Counter(_drift_key(job) for job in _charged_jobs(result.since))
    found.pop(None, None)
    result.drifted = sum(found.values())
    rows = [
        PriceDrift(
            model_slug=slug,
            quality=quality,
            duration=duration,
            catalog_micro_cents=catalog,
            charged_micro_cents=charged,
            jobs=count,
            first_seen_at=now,
            last_seen_at=now,
        )
        for (slug, quality, duration, catalog, charged), count in sorted(found.items())
    ]
    PriceDrift.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=[
            "model_slug",
            "quality",
            "duration",
            "catalog_micro_cents",
            "charged_micro_cents",
        ],
        update_fields=["jobs", "last_seen_at"],
    )
    # What this window no longer shows is no longer drifting.
    PriceDrift.objects.filter(jobs__gt=0, last_seen_at__lt=now).update(jobs=0)
    result.drifts = rows


def _charged_jobs(since):
    return (
        Job.objects.filter(created_at__gte=since, api_cost_micro_cents__isnull=False)
        .filter(model_slug__in=list(pricing.MODELS))
        .only("pk", "model_slug", "quality", "duration", "params", "api_cost_micro_cents")
        .iterator(chunk_size=2000)
    )


def _drift_key(job):
    """(model, quality, duration, catalog price, charged) of a job charged other than the
    catalog says; None when it matches, or the catalog no longer offers its options."""
    try:
        catalog = pricing.MODELS[job.model_slug].cost(job.params)
    except (KeyError, TypeError):
        return None
    if catalog == job.api_cost_micro_cents:
        return None
    return job.model_slug, job.quality, job.duration, catalog, job.api_cost_micro_cents


def combination_label(model_slug, quality, duration):
    """How an option combination reads to a person: "Pro · 10 s" (the raw value for a
    quality the catalog no longer names)."""
    return f"{_quality_label(model_slug, quality)} · {duration} s"


def _quality_label(model_slug, quality):
    model = pricing.MODELS.get(model_slug)
    try:
        return model.input("quality").choice(quality).label
    except (AttributeError, KeyError, StopIteration):
        return quality


def drift_line(row):
    """One drift as a sentence (the command's output)."""
    return (
        f"{combination_label(row.model_slug, row.quality, row.duration)}: PixelByte charged "
        f"{pricing.format_dollars(row.charged_micro_cents)}, the catalog says "
        f"{pricing.format_dollars(row.catalog_micro_cents)} ({row.jobs} job{'s' if row.jobs != 1 else ''})"
    )


# --- the worker's daily run -------------------------------------------------------------


def run_daily():
    """The worker's daily reconcile: once a day across every worker (a shared cache key),
    never while PixelByte asked every caller to wait. Logs its summary; never raises."""
    try:
        if throttle.pause_remaining() or not cache.add(DAILY_KEY, True, timeout=_seconds(DAILY_EVERY)):
            return None
        return _daily()
    except Exception:
        log.exception("the daily reconcile could not run; the next worker pass tries again")
        return None


def _daily():
    try:
        result = reconcile()
    except Exception as exc:
        # Not every pass: a wrong key must not turn into a request every two seconds.
        cache.set(DAILY_KEY, True, timeout=_seconds(DAILY_RETRY))
        if isinstance(exc, pixelbyte.RateLimited):
            throttle.pause(exc.retry_after)
        if isinstance(exc, pixelbyte.ApiError):
            log.error("the daily reconcile could not read PixelByte, trying again in an hour: %s", exc)
        else:
            log.exception("the daily reconcile failed; trying again in an hour")
        return None
    log.info("daily reconcile: %s", result.summary())
    return result


def _seconds(delta):
    return int(delta.total_seconds())


# --- what /spend/ shows staff --------------------------------------------------------------


def spend_notes(viewer, period):
    """What /spend/ shows staff about ``period`` (a ``jobs.spend.Period``): the jobs made
    outside the studio and the price drift warnings. Nothing for anyone else. Two queries:
    the period's outside jobs counted (``outside_job_created``), and the drifts."""
    if not viewer.user.is_staff:
        return {}
    outside = outside_line(period)
    drifts = drift_warnings()
    if outside is None and not drifts:
        return {}
    return {"outside": outside, "drifts": drifts}


def outside_line(period):
    """{count, refunded, low, high, when, url} for the period's outside jobs, or None."""
    rows = (
        OutsideJob.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .values("model_slug", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    count = refunded = low = high = 0
    for row in rows:
        if row["status"] in rollup.REFUNDED:
            refunded += row["n"]
            continue
        cheapest, dearest = price_range(row["model_slug"])
        count += row["n"]
        low, high = low + row["n"] * cheapest, high + row["n"] * dearest
    if not count and not refunded:
        return None
    return {
        "count": count,
        "refunded": refunded,
        "low": low,
        "high": high,
        "when": _period_words(period),
        "url": _admin_list_url(period),
    }


def price_range(model_slug):
    """(cheapest, dearest) the catalog allows for one job of the model, in micro-cents
    ((0, 0) for a model it does not know)."""
    model = pricing.MODELS.get(model_slug)
    if model is None:
        return 0, 0
    costs = [model.cost(params) for params in _combinations(model)]
    return min(costs), max(costs)


def _combinations(model):
    combos = [{}]
    for spec in model.priced_inputs():
        combos = [{**combo, spec.name: choice.value} for combo in combos for choice in spec.choices]
    return combos


def _period_words(period):
    if period.key == "this_month":
        return "this month"
    if period.key == "last_month":
        return "last month"
    if period.key in ("30d", "90d"):
        return f"in the {period.label.lower()}"
    return f"from {period.first_day:%b %-d, %Y} to {period.last_day:%b %-d, %Y}"


def _admin_list_url(period):
    query = {"created_at__gte": period.start.isoformat(), "created_at__lt": period.end.isoformat()}
    return reverse("admin:jobs_outsidejob_changelist") + "?" + urlencode(query)


def drift_warnings():
    """The combinations several jobs drifted on, whose catalog price is still the one they
    were compared with (a catalog since corrected warns no more)."""
    rows = PriceDrift.objects.filter(jobs__gte=DRIFT_WARN_AT).order_by(
        "model_slug", "quality", "duration", "charged_micro_cents"
    )
    return [
        {
            "label": combination_label(row.model_slug, row.quality, row.duration),
            "charged": row.charged_micro_cents,
            "catalog": row.catalog_micro_cents,
            "jobs": row.jobs,
        }
        for row in rows
        if _catalog_price(row) == row.catalog_micro_cents
    ]


def _catalog_price(row):
    """The current catalog's price for a drift's combination (other choices at their
    defaults, which do not change the price); None if the catalog no longer offers it."""
    model = pricing.MODELS.get(row.model_slug)
    if model is None:
        return None
    try:
        return model.cost({**model.defaults(), "quality": row.quality, "duration": str(row.duration)})
    except KeyError:
        return None
