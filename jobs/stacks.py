"""Stacks: the jobs made together from one form post (``count`` > 1), and the form's tray.

Every member of a stack has the form's submission key as ``Job.stack_key`` and a key of its
own derived from it (``member_key``); they share the prompt and options and differ in the
seed (``seeds``). The history shows a stack as one row that opens to its members.

The tray beside the prompt form shows the person's latest jobs from this browser session
(``remember_in_tray``, ``tray_of``; a post answered in place sends only its own, ``in_tray``),
live, so they can keep iterating without leaving the form.
"""

import secrets
import uuid

from django.db.models import Count

from .models import Job

MAX_COUNT = 4
TRAY_SESSION_KEY = "tray_jobs"
TRAY_SIZE = 8


def member_key(stack_key, index):
    """The submission key of the ``index``-th member (from 0) of the stack ``stack_key``."""
    return uuid.uuid5(stack_key, str(index))


def seeds(given, count, max_value):
    """The seed of each of ``count`` videos: ``given``, ``given`` + 1, … (wrapping past
    ``max_value`` to 0), or a different random one each when none is given."""
    if given is not None:
        return [(given + i) % (max_value + 1) for i in range(count)]
    chosen = []
    while len(chosen) < count:
        seed = secrets.randbelow(max_value + 1)
        if seed not in chosen:
            chosen.append(seed)
    return chosen


def stack_members(job, jobs=None):
    """The jobs of ``job``'s stack in the order they were made (``job`` alone when it is in
    no stack). ``jobs`` narrows where to look (a viewer's ``jobs()``); members share their
    owner and team, so whoever may see one may see them all."""
    if job.stack_key is None:
        return [job]
    return list((Job.objects.all() if jobs is None else jobs).filter(stack_key=job.stack_key).order_by("pk"))


def fold(jobs):
    """``jobs`` (a list, newest first) with each stack's members gathered under the first of
    them that appears: a list of (lead job, [members in the order made]). Runs no query, so a
    stack cut by a page boundary shows only the members on the page."""
    rows, by_key = [], {}
    for job in jobs:
        key = job.stack_key
        if key is None:
            rows.append((job, [job]))
        elif key in by_key:
            by_key[key].append(job)
        else:
            by_key[key] = [job]
            rows.append((job, by_key[key]))
    for members in by_key.values():
        members.sort(key=lambda member: member.pk)
    return rows


def position(job):
    """Where ``job`` stands in its stack, from 1 (None when it is in no stack)."""
    if job.stack_key is None:
        return None
    for index in range(MAX_COUNT):
        if member_key(job.stack_key, index) == job.submission_key:
            return index + 1
    return None


# --- the form's tray ----------------------------------------------------------------------


def remember_in_tray(session, jobs):
    """Put ``jobs`` (just made) at the front of the session's tray, which keeps ``TRAY_SIZE``."""
    ids = [job.pk for job in jobs]
    earlier = [pk for pk in session.get(TRAY_SESSION_KEY, []) if pk not in ids]
    session[TRAY_SESSION_KEY] = (ids + earlier)[:TRAY_SIZE]


def tray_of(session, viewer):
    """The session's tray jobs that ``viewer`` may see, newest first, each with ``facts`` (its
    options as a person reads them) and, in a stack, ``stack_place`` ("2 of 3"). Two queries."""
    ids = session.get(TRAY_SESSION_KEY, [])
    if not ids:
        return []
    found = {job.pk: job for job in viewer.jobs_by_id(ids).select_related("files_deleted_by")}
    jobs = [found[pk] for pk in ids if pk in found]
    keys = {job.stack_key for job in jobs if job.stack_key is not None}
    sizes = (
        dict(
            viewer.jobs()
            .filter(stack_key__in=keys)
            .values("stack_key")
            .annotate(size=Count("pk"))
            .values_list("stack_key", "size")
        )
        if keys
        else {}
    )
    for job in jobs:
        _describe(job, sizes.get(job.stack_key))
    return jobs


def in_tray(jobs):
    """``jobs`` that one post just made (all of a stack's members), described for the tray as
    ``tray_of`` describes its jobs, in the order made; no query."""
    for job in jobs:
        _describe(job, len(jobs))
    return jobs


def _describe(job, stack_size):
    """Give ``job`` its ``facts`` and, in a stack of ``stack_size``, its ``stack_place``."""
    job.facts = facts(job)
    place = position(job)
    job.stack_place = f"{place} of {stack_size}" if place and stack_size else ""


def facts(job):
    """``job``'s options as the form names them: "Pro · 10 seconds · 16:9 landscape · seed 42"."""
    model = job.catalog_model
    words = []
    for name in ("quality", "duration", "aspect_ratio"):
        value = str(getattr(job, name))
        try:
            words.append(model.input(name).choice(value).label if model else value)
        except (KeyError, StopIteration):
            words.append(value)
    if job.seed is not None:
        words.append(f"seed {job.seed}")
    return " · ".join(words)
