"""Signing in, with a brake on password guessing.

Wrong passwords are counted per (user name, client address) in the cache. After
``LOGIN_MAX_FAILURES`` of them, that pair is refused for ``LOGIN_LOCKOUT_SECONDS``
even with the right password, and the person is told for how long. Keying on the
address as well means a guesser elsewhere cannot lock the real person out.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.core.exceptions import ValidationError

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


def _key(username, ip):
    digest = hashlib.sha256(f"{username.strip().lower()}|{ip}".encode()).hexdigest()
    return f"signin-failures:{digest}"


def seconds_locked(username, ip):
    entry = cache.get(_key(username, ip))
    if not entry or entry["count"] < settings.LOGIN_MAX_FAILURES:
        return 0
    return max(0, int(entry["until"] - time.time()) + 1)


def record_failure(username, ip):
    key = _key(username, ip)
    entry = cache.get(key) or {"count": 0, "until": 0}
    entry["count"] += 1
    entry["until"] = time.time() + settings.LOGIN_LOCKOUT_SECONDS
    cache.set(key, entry, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    if entry["count"] == settings.LOGIN_MAX_FAILURES:
        log.warning("sign-in locked for a user name from %s after %s wrong passwords", ip, entry["count"])


def clear_failures(username, ip):
    cache.delete(_key(username, ip))


class ThrottledLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")[:150]
        ip = client_ip(request)
        wait = seconds_locked(username, ip)
        if wait:
            form = self.get_form()
            form.errors.clear()
            form.add_error(
                None,
                ValidationError(
                    f"Too many wrong passwords. Sign-in for this account from your address is paused; "
                    f"try again in {max(1, wait // 60)} minute{'s' if wait > 60 else ''}."
                ),
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        response = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            clear_failures(username, ip)
        else:
            record_failure(username, ip)
        return response
