"""Browsing a person's jobs: filters, marks, stacks, sorts and keyset pages.

Pages are cut by the (sort key, id) of the last row shown, never by OFFSET, so
page 4,000 costs what page 1 costs: for the default order the ``job_owner_created``
index serves both the order and the cut.

One page of the history is one query: each row carries the viewer's own star and
rating, and the count of a filter's matches (up to ``COUNT_CAP``) rides along as a
subquery the database runs once; with no filter, that subquery reads the count of every
job the viewer may see from the monthly rollup instead, a row a month. Only a page with stacks on it
costs one query more (their other members).
"""

import base64
import binascii
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Exists, F, Func, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from .models import ArchiveStatus, JobMark, Profile, Status, charge_expression

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
PAGE_SIZES = (25, 50, 100)  # what the page offers; any size up to the maximum is accepted
LAYOUTS = ("list", "grid")


def _pack(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unpack(text):
    """The (key, id) text of a cursor, or None when ``text`` is not one of ours."""
    if not text or len(text) > 200:
        return None
    try:
        key, pk = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode().rsplit("|", 1)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not pk.isascii() or not pk.isdigit() or len(pk) > 18:
        return None
    return key, int(pk)


@dataclass(frozen=True)
class Cursor:
    """Where a page ordered by time ends."""

    created_at: datetime
    pk: int

    @property
    def value(self):
        return self.created_at

    def encode(self):
        return _pack(f"{self.created_at.isoformat()}|{self.pk}")

    @classmethod
    def decode(cls, text):
        """The cursor in ``text``, or None when it is not one of ours."""
        unpacked = _unpack(text)
        if unpacked is None:
            return None
        try:
            created_at = datetime.fromisoformat(unpacked[0])
            if created_at.tzinfo is None:
                return None
            created_at = created_at.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
        if not 2000 <= created_at.year <= 9000:
            return None
        return cls(created_at, unpacked[1])

    @classmethod
    def of(cls, job):
        return cls(job.created_at, job.pk)


@dataclass(frozen=True)
class ValueCursor:
    """Where a page ordered by a whole number (a price, a rating) ends."""

    value: int
    pk: int

    def encode(self):
        return _pack(f"n{self.value}|{self.pk}")

    @classmethod
    def decode(cls, text):
        unpacked = _unpack(text)
        if unpacked is None:
            return None
        number = unpacked[0].removeprefix("n")
        if (
            not unpacked[0].startswith("n")
            or not number.isascii()
            or not number.isdigit()
            or len(number) > 18
        ):
            return None
        return cls(int(number), unpacked[1])


@dataclass(frozen=True)
class Order:
    """One way to sort the history: by a column or annotation, then by id."""

    name: str  # as written in ?sort=
    label: str
    field: str
    descending: bool = True
    # Whether a stack shows as one row. Not when sorting by rating: a stack's best-rated
    # video must not hide behind its first one.
    folds_stacks: bool = True

    @property
    def cursor(self):
        return Cursor if self.field == "created_at" else ValueCursor

    def cursor_of(self, job):
        return self.cursor(getattr(job, self.field), job.pk)

    @property
    def by_time(self):
        return self.field == "created_at"


NEWEST = Order("", "Newest first", "created_at")
ORDERS = (
    NEWEST,
    Order("oldest", "Oldest first", "created_at", descending=False),
    Order("price", "Highest price first", "sort_price"),
    Order("cheapest", "Lowest price first", "sort_price", descending=False),
    Order("rating", "Best rated first", "sort_rating", folds_stacks=False),
)


def order_named(name):
    return next((order for order in ORDERS if order.name == name), NEWEST)


@dataclass(frozen=True)
class Page:
    jobs: list
    newer: Cursor | ValueCursor | None  # cursor for the page before this one, if any
    older: Cursor | ValueCursor | None  # cursor for the page after this one, if any


# Written as "up to the cursor, and then the tie broken by id" rather than the plainer
# "before, or at the same key with a lower id": the first condition alone is a range the
# index can seek to, so a page deep in the history costs what the first does (with the
# OR on the outside, PostgreSQL walks every newer row to get there).


def _below(field, cursor):
    value = cursor.value
    return Q(**{f"{field}__lte": value}) & (Q(**{f"{field}__lt": value}) | Q(pk__lt=cursor.pk))


def _above(field, cursor):
    value = cursor.value
    return Q(**{f"{field}__gte": value}) & (Q(**{f"{field}__gt": value}) | Q(pk__gt=cursor.pk))


def older_than(cursor):
    return _below("created_at", cursor)


def newer_than(cursor):
    return _above("created_at", cursor)


def page_of(queryset, *, after=None, before=None, size=PAGE_SIZE, order=NEWEST):
    """One page of ``queryset`` in ``order`` (newest first by default), in a single query.

    ``after`` continues down the list, ``before`` goes back up it. One row more than
    the page is read to know whether another page follows.
    """
    ahead, behind = (_below, _above) if order.descending else (_above, _below)
    sign, back = ("-", "") if order.descending else ("", "-")
    if before is not None:
        rows = queryset.filter(behind(order.field, before)).order_by(back + order.field, back + "pk")
        rows = list(rows[: size + 1])
        more_before = len(rows) > size
        jobs = rows[:size][::-1]
        return Page(
            jobs,
            order.cursor_of(jobs[0]) if more_before and jobs else None,
            order.cursor_of(jobs[-1]) if jobs else None,
        )
    if after is not None:
        queryset = queryset.filter(ahead(order.field, after))
    rows = list(queryset.order_by(sign + order.field, sign + "pk")[: size + 1])
    jobs = rows[:size]
    newer = order.cursor_of(jobs[0]) if after is not None and jobs else None
    older = order.cursor_of(jobs[-1]) if len(rows) > size else None
    return Page(jobs, newer, older)


# --- marks: one person's star and rating of a job -----------------------------------------

NO_CHANGE = object()


def set_mark(user, job, *, starred=NO_CHANGE, rating=NO_CHANGE):
    """Star or unstar ``job`` for ``user`` and/or rate it (1–5, None to clear); the mark."""
    changes = {"updated_at": timezone.now()}
    if starred is not NO_CHANGE:
        changes["starred"] = bool(starred)
    if rating is not NO_CHANGE:
        if rating is not None and not 1 <= rating <= 5:
            raise ValueError("A rating is a whole number from 1 to 5.")
        changes["rating"] = rating
    mark, _ = JobMark.objects.update_or_create(user=user, job=job, defaults=changes)
    return mark


def mark_of(user, job):
    """``user``'s mark of ``job`` (None when they have not starred or rated it): for the job page."""
    return JobMark.objects.filter(user_id=user.pk, job_id=job.pk).first()


def _marks_by(user):
    return JobMark.objects.filter(job=OuterRef("pk"), user_id=user.pk)


def _team_stars():
    # Stars of the people in the job's own team (its managers included): what a manager
    # means by "the team's favourites". Served by the partial index job_mark_starred.
    return JobMark.objects.filter(
        job=OuterRef("pk"), starred=True, user__profile__team_id=OuterRef("team_id")
    )


def starred_by(jobs, user):
    return jobs.filter(Exists(_marks_by(user).filter(starred=True)))


def starred_by_team(jobs):
    return jobs.filter(Exists(_team_stars()))


def rated_at_least(jobs, user, rating):
    return jobs.filter(Exists(_marks_by(user).filter(rating__gte=rating)))


def _count(queryset):
    """SQL for the number of rows of ``queryset``, as one value (a subquery)."""
    return Subquery(
        queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n"),
        output_field=IntegerField(),
    )


def with_marks(jobs, user, team_stars=False):
    """``jobs`` with ``user``'s own star (``my_starred``) and rating (``my_rating``), and with
    ``team_stars`` (how many in the job's team starred it) when asked."""
    jobs = jobs.annotate(
        my_starred=Exists(_marks_by(user).filter(starred=True)),
        my_rating=Subquery(_marks_by(user).values("rating")[:1]),
    )
    if team_stars:
        jobs = jobs.annotate(team_stars=_count(_team_stars()))
    return jobs


def sorted_for(jobs, order, user):
    """``jobs`` with the value ``order`` sorts them by, when it is not a column."""
    if order.field == "sort_price":
        return jobs.annotate(sort_price=charge_expression())
    if order.field == "sort_rating":
        # Unrated jobs sort as 0, after every rated one.
        rating = Subquery(_marks_by(user).values("rating")[:1])
        return jobs.annotate(sort_rating=Coalesce(rating, Value(0), output_field=IntegerField()))
    return jobs


# Matches of a filter are counted up to this many ("10,000+" beyond), so a filter that
# matches most of a large history costs no more than one that matches a page of it.
COUNT_CAP = 10_000


def with_total(jobs, matching, everything=None):
    """``jobs`` with ``matches``: how many rows ``matching`` has, up to ``COUNT_CAP`` + 1, or
    ``everything`` (an expression: the count of every job the viewer may see, when no filter
    narrows them). The subquery names no outer column, so the database counts once per
    page, not once per row."""
    return jobs.annotate(matches=_capped_count(matching) if everything is None else everything)


def _capped_count(queryset):
    inner, params = queryset.order_by().values("pk")[: COUNT_CAP + 1].query.sql_with_params()
    # Only Django's own compiled SQL goes into the text; every value stays a parameter.
    sql = f"SELECT COUNT(*) FROM ({inner}) AS capped"  # noqa: S608
    return RawSQL(sql, params, output_field=IntegerField())  # noqa: S611


def total(page, matching, paged):
    """How many videos match the filters, up to ``COUNT_CAP`` + 1 (or all of them, with no
    filter): carried by the page's rows (no query of its own)."""
    if page.jobs:
        return page.jobs[0].matches
    # An empty first page matches nothing; a page past the end is rare enough to count apart.
    return matching.order_by().values("pk")[: COUNT_CAP + 1].count() if paged else 0


# --- stacks: the jobs of one form post ------------------------------------------------------


def one_per_stack(jobs):
    """``jobs`` with each stack shown once: by its first member among ``jobs``."""
    earlier = jobs.filter(stack_key=OuterRef("stack_key"), pk__lt=OuterRef("pk"))
    return jobs.filter(Q(stack_key__isnull=True) | ~Exists(earlier))


def attach_members(heads, jobs=None):
    """Give each job of ``heads`` the rows it shows (``stack_rows``: itself, then the other
    members of its stack found in ``jobs``, in the order they were made; none without
    ``jobs``) and each of those its ``video`` URL. One query for the whole page, and none
    when the page has no stack."""
    keys = {job.stack_key for job in heads if job.stack_key is not None}
    found = defaultdict(list)  # stack key → its other members
    if keys and jobs is not None:
        shown = [job.pk for job in heads]
        for member in jobs.filter(stack_key__in=keys).exclude(pk__in=shown).order_by("pk"):
            found[member.stack_key].append(member)
    for job in heads:
        job.stack_members = found.get(job.stack_key, [])
        job.stack_rows = [job, *job.stack_members]
        for row in job.stack_rows:
            row.video = video_url(row)
        playable = [str(row.pk) for row in job.stack_rows if row.video]
        # "Compare all": a stack of two to four videos, every one of them ready.
        job.stack_compare = (
            ",".join(playable)
            if len(job.stack_rows) > 1 and len(playable) == len(job.stack_rows) <= 4
            else ""
        )


def video_url(job):
    """Where the job's video plays from: the studio's copy when it keeps one, else
    PixelByte's link; None when there is no video (yet, or any more)."""
    if job.archive_status == ArchiveStatus.ARCHIVED:
        return reverse("jobs:video", args=[job.pk])
    if job.archive_status in (ArchiveStatus.DELETED, ArchiveStatus.LOST) or job.status != Status.COMPLETED:
        return None
    return job.output_url or None


# --- layout ------------------------------------------------------------------------------------


def chosen_layout(asked, profile, session):
    """The history's layout: ``asked`` (``?view=``) when it is one, remembered on the
    person's profile (or, for someone without one, their session); else the one remembered."""
    if asked in LAYOUTS:
        if profile is None:
            session["history_view"] = asked
        elif profile.history_view != asked:
            profile.history_view = asked
            Profile.objects.filter(pk=profile.pk).update(history_view=asked)
        return asked
    remembered = profile.history_view if profile is not None else session.get("history_view")
    return remembered if remembered in LAYOUTS else LAYOUTS[0]
