"""Signing in, with a brake on password guessing.

Every sign-in surface (the studio's page, the admin's, anything else that calls
Django's ``authenticate()``) goes through ``ThrottledModelBackend``, the only
authentication backend. Before a password is checked, the backend takes one
attempt for the pair (user name as Django normalises it, client address) in a
short locked transaction; after ``LOGIN_MAX_FAILURES`` attempts without a success,
that pair is refused for ``LOGIN_LOCKOUT_SECONDS``, even with the right password.
Because the attempt is counted before the check, concurrent guesses cannot slip
past the count: at most ``LOGIN_MAX_FAILURES`` passwords are ever checked. Keying
on the address as well means a guesser elsewhere cannot lock the real person out.
"""

import hashlib
import logging
import unicodedata
from datetime import timedelta

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from .models import SignInThrottle

log = logging.getLogger(__name__)


def client_ip(request):
    """The client's address: REMOTE_ADDR, or behind ``PROXY_COUNT`` proxies the entry they
    appended to X-Forwarded-For (counting from the right, so a forged left part is ignored)."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.PROXY_COUNT
    if count <= 0:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    return chain[-count] if len(chain) >= count else remote


def normalised(username):
    """The name as Django's sign-in form cleans it (NFKC), case-folded: every spelling
    that would sign in as the same person (``ｅｖｅ``, ``𝐞𝐯𝐞``) shares one counter."""
    return unicodedata.normalize("NFKC", username or "").strip().casefold()


def _key(username, ip):
    return hashlib.sha256(f"{normalised(username)}|{ip}".encode()).hexdigest()


def take_attempt(username, ip, now=None):
    """Count one password check for (name, address); return 0 when it may go ahead,
    else the seconds until it may."""
    now = now or timezone.now()
    with transaction.atomic():
        row, _ = SignInThrottle.objects.select_for_update().get_or_create(
            key=_key(username, ip), defaults={"expires_at": now}
        )
        if row.expires_at <= now:
            row.failures = 0
        if row.failures >= settings.LOGIN_MAX_FAILURES:
            return max(1, int((row.expires_at - now).total_seconds()) + 1)
        row.failures += 1
        row.expires_at = now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
        row.save(update_fields=["failures", "expires_at"])
    if row.failures == settings.LOGIN_MAX_FAILURES:
        log.warning("sign-in locked for a user name from %s after %s attempts", ip, row.failures)
    return 0


def clear_attempts(username, ip):
    SignInThrottle.objects.filter(key=_key(username, ip)).delete()


class ThrottledModelBackend(ModelBackend):
    """Django's own user-and-password backend behind the attempt counter."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if username is None or password is None:
            return None
        ip = client_ip(request) if request is not None else ""
        wait = take_attempt(username, ip)
        if wait:
            if request is not None:
                request.signin_wait = wait
            raise PermissionDenied("sign-in paused")  # no other backend is asked either
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            clear_attempts(username, ip)
        return user

    @staticmethod
    def _username_field():
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def paused_message(wait):
    minutes = max(1, wait // 60)
    return (
        "Too many wrong passwords. Sign-in for this account from your address is paused; "
        f"try again in {minutes} minute{'s' if minutes > 1 else ''}."
    )


class PausedSignInMixin:
    """Says that sign-in is paused instead of "wrong password" while it is."""

    def get_invalid_login_error(self):
        wait = getattr(self.request, "signin_wait", 0)
        if wait:
            return ValidationError(paused_message(wait), code="paused")
        return super().get_invalid_login_error()


class StudioAuthenticationForm(PausedSignInMixin, AuthenticationForm):
    pass


class StudioAdminAuthenticationForm(PausedSignInMixin, AdminAuthenticationForm):
    pass


class ThrottledLoginView(auth_views.LoginView):
    redirect_authenticated_user = True
    authentication_form = StudioAuthenticationForm

    def form_invalid(self, form):
        status = 429 if getattr(self.request, "signin_wait", 0) else 200
        return self.render_to_response(self.get_context_data(form=form), status=status)
