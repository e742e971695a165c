"""Things a person is told on their next page (a manager decided their request, say).

``tell`` queues a notice; the page template shows a person's unseen notices once and
marks them seen. Whether there are any rides on the profile query every page makes
anyway (``access.profile_of``), so a page with nothing to tell costs no extra query.
"""

from django.utils import timezone

from .models import Notice


def tell(user, text, *, url="", level="info"):
    return Notice.objects.create(user_id=getattr(user, "pk", user), text=text, url=url, level=level)


def take_unseen(user, *, hint=None):
    """The person's unseen notices, oldest first, now marked seen. ``hint`` False (from the
    profile's ``has_notices``) skips the query."""
    if hint is False:
        return []
    unseen = list(
        Notice.objects.filter(user_id=user.pk, seen_at__isnull=True).order_by("created_at", "pk")[:20]
    )
    if unseen:
        Notice.objects.filter(pk__in=[notice.pk for notice in unseen]).update(seen_at=timezone.now())
    return unseen
