"""Messages the studio sends (email, and a team's chat webhook), delivered by the worker.

Whoever decides to tell someone queues an ``OutgoingMessage`` (in its own transaction,
so the message exists exactly when the decision does) and never waits for delivery.
The worker (``sync_jobs``) calls ``deliver_due`` every pass: each message is claimed
with a conditional update, so two workers never send one twice, sent, and marked sent;
a failure is retried with a growing delay, and given up (and logged) after
``MAX_ATTEMPTS``. Job callbacks are messages too, but ``jobs.callbacks`` delivers them,
on threads of their own, with ``claim``, ``mark_sent`` and ``put_off`` from here.
"""

import logging
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.utils import timezone

from .models import Channel, OutgoingMessage

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
CLAIM = timedelta(minutes=2)
CHAT_TIMEOUT = (3.05, 10)
BATCH = 50


def queue_email(recipients, subject, body, *, alert=None, now=None):
    """Queue one email to ``recipients`` (addresses; empty ones dropped); None when nobody has one.
    ``now``: the caller's clock, so a worker pass that queues it also finds it due."""
    addresses = sorted({address for address in recipients if address})
    if not addresses:
        return None
    return OutgoingMessage.objects.create(
        channel=Channel.EMAIL,
        recipients=addresses,
        subject=subject[:200],
        body=body,
        alert=alert,
        **_due(now),
    )


def queue_chat(team, text, *, alert=None, now=None):
    """Queue a post to ``team``'s chat webhook; None when the team has none."""
    if team is None or not team.chat_webhook_url:
        return None
    return OutgoingMessage.objects.create(
        channel=Channel.CHAT, team=team, body=text, alert=alert, **_due(now)
    )


def _due(now):
    # Stamped after a pass took its clock, a message would wait for the next pass.
    return {"created_at": now, "next_attempt_at": now} if now is not None else {}


def deliver_due(now=None):
    """Send every email and chat message whose attempt is due; return how many were sent.
    (Job callbacks are left to ``jobs.callbacks``: a receiver that never answers must not
    hold up this pass.)"""
    now = now or timezone.now()
    due = (
        OutgoingMessage.objects.filter(next_attempt_at__lte=now)
        .exclude(channel=Channel.CALLBACK)
        .order_by("next_attempt_at")[:BATCH]
    )
    return deliver(due, now)


def deliver(messages, now=None):
    """Try each message once. After a failure, the rest of the pass leaves that way out (the
    mail server, or one team's chat): a silent server costs one timeout a pass, not one per
    message, so it never holds the worker up for long."""
    now = now or timezone.now()
    sent, stalled = 0, set()
    for message in messages:
        way = (message.channel, message.team_id if message.channel == Channel.CHAT else None)
        if way in stalled or not claim(message, now):
            continue
        if _attempt(message, now):
            sent += 1
        else:
            stalled.add(way)
    return sent


def unclaimed(now):
    """Messages no worker holds at ``now``."""
    return Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)


def claim(message, now):
    """Take the message for ``CLAIM`` and count the attempt: no other worker or request
    sends it meanwhile. Only a message still due: one another worker tried (and put off)
    since it was read waits."""
    return bool(
        OutgoingMessage.objects.filter(
            unclaimed(now), pk=message.pk, sent_at__isnull=True, next_attempt_at__lte=now
        ).update(claimed_until=now + CLAIM, attempts=message.attempts + 1)
    )


def _attempt(message, now):
    try:
        if message.channel == Channel.EMAIL:
            send_mail(message.subject, message.body, None, message.recipients)
        else:
            _post_chat(message)
    except Exception as exc:  # any transport failure is retried, never raised to the caller
        _failed(message, exc, now)
        return 0
    mark_sent(message)
    return 1


def mark_sent(message):
    OutgoingMessage.objects.filter(pk=message.pk).update(
        sent_at=timezone.now(), next_attempt_at=None, claimed_until=None, last_error=""
    )


def put_off(message, error, retry_at):
    """Release a message after a failed attempt: due again at ``retry_at``, or (None) given up."""
    OutgoingMessage.objects.filter(pk=message.pk).update(
        next_attempt_at=retry_at, claimed_until=None, last_error=error
    )


def _post_chat(message):
    url = message.team.chat_webhook_url if message.team_id else ""
    if not url:
        raise ValueError("The team no longer has a chat webhook URL.")
    try:
        response = requests.post(
            url, json={"text": message.body}, timeout=CHAT_TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as exc:
        # The URL is the webhook's secret: never let it into the error or the log.
        raise ValueError(f"The chat webhook could not be reached ({type(exc).__name__}).") from None
    if not 200 <= response.status_code < 300:
        raise ValueError(f"The chat webhook answered HTTP {response.status_code}.")


def _failed(message, exc, now):
    attempts = message.attempts + 1
    error = f"{type(exc).__name__}: {exc}"[:1000]
    give_up = attempts >= MAX_ATTEMPTS
    # Put off from the pass's clock, the one ``deliver_due`` compares it with.
    retry_at = None if give_up else now + timedelta(seconds=min(3600, 15 * 2 ** (attempts - 1)))
    put_off(message, error, retry_at)
    log.warning(
        "%s message %s not delivered (attempt %s%s): %s",
        message.get_channel_display(),
        message.pk,
        attempts,
        ", giving up" if give_up else "",
        error,
    )


def studio_link(path):
    """An absolute link to a page of the studio, for messages read outside it."""
    return f"{settings.PUBLIC_BASE_URL}{path}"
