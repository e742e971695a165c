"""Browsing a person's jobs: filters and keyset pages.

Pages are cut by the (created_at, id) of the last row shown, never by OFFSET, so
page 4,000 costs what page 1 costs: the ``job_owner_created`` index serves both
the order and the cut.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    pk: int

    def encode(self):
        raw = f"{self.created_at.isoformat()}|{self.pk}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text):
        """The cursor in ``text``, or None when it is not one of ours."""
        if not text or len(text) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            stamp, pk = raw.rsplit("|", 1)
            created_at = datetime.fromisoformat(stamp)
            if created_at.tzinfo is None or not pk.isdigit() or len(pk) > 18:
                return None
            created_at = created_at.astimezone(UTC)
        except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
            return None
        if not 2000 <= created_at.year <= 9000:
            return None
        return cls(created_at, int(pk))

    @classmethod
    def of(cls, job):
        return cls(job.created_at, job.pk)


@dataclass(frozen=True)
class Page:
    jobs: list
    newer: Cursor | None  # cursor for the page before this one (newer jobs), if any
    older: Cursor | None  # cursor for the page after this one (older jobs), if any


# Written as "created_at up to the cursor, and then the tie broken by id" rather than the
# plainer "before, or at the same time with a lower id": the first condition alone is a
# range the index can seek to, so a page deep in the history costs what the first does
# (with the OR on the outside, PostgreSQL walks every newer row to get there).


def older_than(cursor):
    return Q(created_at__lte=cursor.created_at) & (Q(created_at__lt=cursor.created_at) | Q(pk__lt=cursor.pk))


def newer_than(cursor):
    return Q(created_at__gte=cursor.created_at) & (Q(created_at__gt=cursor.created_at) | Q(pk__gt=cursor.pk))


def page_of(queryset, *, after=None, before=None, size=PAGE_SIZE):
    """One page of ``queryset``, newest first, in a single query.

    ``after`` continues towards older jobs, ``before`` goes back towards newer
    ones. One row more than the page is read to know whether another page follows.
    """
    if before is not None:
        rows = list(queryset.filter(newer_than(before)).order_by("created_at", "pk")[: size + 1])
        more_newer = len(rows) > size
        jobs = rows[:size][::-1]
        return Page(
            jobs, Cursor.of(jobs[0]) if more_newer and jobs else None, Cursor.of(jobs[-1]) if jobs else None
        )
    if after is not None:
        queryset = queryset.filter(older_than(after))
    rows = list(queryset.order_by("-created_at", "-pk")[: size + 1])
    jobs = rows[:size]
    newer = Cursor.of(jobs[0]) if after is not None and jobs else None
    older = Cursor.of(jobs[-1]) if len(rows) > size else None
    return Page(jobs, newer, older)
