"""Personal API tokens: what a script carries instead of the team's PixelByte key.

A token is ``ks_`` and 40 random url-safe characters (240 bits): so strong that a fast hash
is safe, so the studio keeps only its SHA-256 (one indexed look-up per request, no slow
password hash) and its first characters, to tell tokens apart. It is shown once, when it is
made. A token acts as its person: the same access rule, the same budgets, plus scopes
(``submit``, ``read``), an optional expiry and an optional monthly budget of its own (checked
with the person's and the team's, under the same locks). Every request reads the token row,
so a revoked or expired token stops working at once; nothing about a token is cached.
"""

import base64
import hashlib
import ipaddress
import secrets
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import audit, pricing
from .models import ApiToken, AuditAction, Profile, TokenScope

PREFIX = "ks_"
SHOWN_CHARS = 10  # "ks_" and 7 more: enough to tell a person's tokens apart
MAX_TOKEN_LENGTH = 200
# "Last used" is written at most this often per token (and whenever the address changes),
# so reading a job through the API stays a read.
LAST_USED_EVERY = timedelta(minutes=1)
ALL_SCOPES = (TokenScope.SUBMIT, TokenScope.READ)
# Limits shared by the page and the operator's command.
MAX_BUDGET_DOLLARS = Decimal("1000000")
MAX_EXPIRY_DAYS = 3650
# ``create``'s default actor: the person makes their own token (``actor=None``: the studio).
THEMSELVES = object()


def digest(raw):
    return hashlib.sha256(raw.encode()).hexdigest()


def new_webhook_secret():
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@sensitive_variables("raw")
def create(user, *, name, scopes=ALL_SCOPES, expires_at=None, budget=None, actor=THEMSELVES, request=None):
    """Make a token for ``user``; return (the row, the token itself: shown now, never again).

    ``actor`` is who makes it: the person themselves by default, or None for the studio (an
    operator's command), which the audit trail names as such."""
    raw = PREFIX + secrets.token_urlsafe(30)
    scopes = sorted({TokenScope(scope) for scope in scopes})
    actor = user if actor is THEMSELVES else actor
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=name,
            prefix=raw[:SHOWN_CHARS],
            key_hash=digest(raw),
            scopes=scopes,
            expires_at=expires_at,
            monthly_budget_micro_cents=budget,
            webhook_secret=new_webhook_secret(),
        )
        who = actor.get_username() if actor is not None else "An operator (manage.py create_api_token)"
        audit.record(
            AuditAction.TOKEN_CREATED,
            f"{who} created API token “{name}” ({token.prefix}…) for {user.get_username()}: "
            f"{describe(token)}.",
            actor=actor,
            request=request,
            team=_team_of(user),
            subject=user,
            detail={"token": token.pk, "scopes": scopes, "expires_at": _iso(expires_at), "budget": budget},
        )
    return token, raw


def revoke(token, *, by, request=None, now=None):
    """Revoke ``token`` at once; return whether it was live (a second revoke changes nothing).
    ``by``: the person revoking it, or None for the studio."""
    now = now or timezone.now()
    with transaction.atomic():
        if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=by
        ):
            return False
        audit.record(
            AuditAction.TOKEN_REVOKED,
            f"{_name_of(by)} revoked API token “{token.name}” ({token.prefix}…) of {token.user.get_username()}.",
            actor=by,
            request=request,
            team=_team_of(token.user),
            subject=token.user,
            detail={"token": token.pk},
        )
    return True


def authenticate(raw, *, address=None, now=None):
    """The live token ``raw`` is (its user joined in), or None: unknown, revoked, expired, or
    its person's account closed. Notes when and from where it was used."""
    if not isinstance(raw, str) or not raw.startswith(PREFIX) or len(raw) > MAX_TOKEN_LENGTH:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=digest(raw)).first()
    now = now or timezone.now()
    address = _address(address)
    if token is None or not token.is_live(now) or not token.user.is_active:
        return None
    stale = token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY
    if stale or token.last_used_ip != address:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=address)
        token.last_used_at, token.last_used_ip = now, address
    return token


def visible_to(viewer):
    """The tokens ``viewer`` (a ``jobs.access.Viewer``) may see and revoke: staff everyone's, a
    manager their team's (their own among them), anyone else their own."""
    tokens = ApiToken.objects.all()
    if viewer.user.is_staff:
        return tokens
    if viewer.is_manager:
        return tokens.filter(user__profile__team_id=viewer.profile.team_id)
    return tokens.filter(user_id=viewer.user.pk)


def expiry_after(days, now=None):
    """The moment a token made now expires after ``days`` days."""
    return (now or timezone.now()) + timedelta(days=days)


def describe(token):
    """The token's limits in words: "submit and read, no expiry, no budget of its own" (an
    expiry in the active time zone, named)."""
    scopes = " and ".join(TokenScope(scope).name.lower() for scope in token.scopes) or "no scopes"
    expiry = (
        f"expires {timezone.localtime(token.expires_at):%Y-%m-%d %H:%M %Z}"
        if token.expires_at
        else "no expiry"
    )
    budget = (
        f"{pricing.format_dollars(token.monthly_budget_micro_cents)} a month of its own"
        if token.monthly_budget_micro_cents is not None
        else "no budget of its own"
    )
    return f"{scopes}, {expiry}, {budget}"


def _name_of(person):
    return person.get_username() if person is not None else audit.STUDIO.capitalize()


def _address(raw):
    """``raw`` as a valid IP address, or None (a missing or garbled REMOTE_ADDR)."""
    try:
        return str(ipaddress.ip_address(raw)) if raw else None
    except ValueError:
        return None


def _team_of(user):
    return Profile.objects.filter(user_id=user.pk).values_list("team_id", flat=True).first()


def _iso(moment):
    return moment.isoformat() if moment else None
