from django.conf import settings
from django.utils.functional import SimpleLazyObject

from . import notices
from .access import Viewer


def studio(request):
    context = {"sandbox_mode": not settings.PIXELBYTE_API_KEY}
    if request.user.is_authenticated:
        viewer = Viewer.for_request(request)
        context["decides"] = SimpleLazyObject(lambda: viewer.decides)
        context["notices"] = SimpleLazyObject(
            lambda: notices.take_unseen(
                request.user, hint=viewer.profile.has_notices if viewer.profile is not None else None
            )
        )
    return context
