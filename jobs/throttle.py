"""When the studio may call PixelByte: the pause it asked for, and the circuit breaker.

Both live in the database cache, so every web process and every sync worker sees the
same state.

- **The pause.** A 429 (or ``CONCURRENT_JOBS_EXCEEDED``) from any call starts a pause of
  its ``Retry-After`` (``PIXELBYTE_DEFAULT_COOLDOWN`` without one, clamped to
  ``PIXELBYTE_MAX_COOLDOWN``). Submits and the sync worker's checks both wait it out.
- **The breaker** (API-09). After ``BREAKER_THRESHOLD`` submits in a row get no answer
  (network down, timeouts, 5xx), new submits fail at once without calling PixelByte for
  ``PIXELBYTE_BREAKER_COOLOFF`` seconds; then exactly one trial submit is let through, and
  its outcome closes or re-opens the breaker.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

from . import pixelbyte

log = logging.getLogger(__name__)

PAUSE_KEY = "pixelbyte:submit-cooldown-until"
BREAKER_KEY = "pixelbyte:breaker"
BREAKER_TRIAL_KEY = "pixelbyte:breaker-trial"
BREAKER_THRESHOLD = 5
BREAKER_FAILURES = (pixelbyte.NotSent, pixelbyte.NoAnswer, pixelbyte.ServerError)


class SubmissionPaused(Exception):
    """Submissions are paused for a while (the API asked us to wait, or is failing)."""

    def __init__(self, seconds, reason="PixelByte asked the studio to slow down."):
        self.seconds = seconds
        super().__init__(f"{reason} Nothing was sent; try again in {seconds} s.")


def _seconds_until(moment):
    """Whole seconds from now until ``moment`` (a ``time.time()`` value), 0 when past."""
    return 0 if moment is None else max(0, math.ceil(moment - time.time()))


def pause(retry_after):
    """Start the pause PixelByte asked for; return its length in seconds."""
    seconds = settings.PIXELBYTE_DEFAULT_COOLDOWN if retry_after is None else retry_after
    seconds = min(max(seconds, 1), settings.PIXELBYTE_MAX_COOLDOWN)
    cache.set(PAUSE_KEY, time.time() + seconds, timeout=seconds + 1)
    log.warning("PixelByte asked to slow down: pausing calls for %s s", seconds)
    return seconds


def pause_remaining():
    """Whole seconds left of the pause PixelByte asked for (0 when there is none)."""
    return _seconds_until(cache.get(PAUSE_KEY))


def check_submit():
    """Raise ``SubmissionPaused`` during a pause or while the breaker is open; return the
    breaker state seen (for ``record_submit``). One read of the shared cache."""
    found = cache.get_many([PAUSE_KEY, BREAKER_KEY])
    wait = _seconds_until(found.get(PAUSE_KEY))
    if wait:
        raise SubmissionPaused(wait)
    _breaker_allows(found.get(BREAKER_KEY))
    return found.get(BREAKER_KEY)


def _breaker_allows(state):
    if not state or state["failures"] < BREAKER_THRESHOLD:
        return
    reason = "PixelByte is not answering, so the studio paused submissions."
    left = _seconds_until(state["open_until"])
    if left:
        raise SubmissionPaused(left, reason)
    if not cache.add(BREAKER_TRIAL_KEY, True, timeout=settings.PIXELBYTE_BREAKER_COOLOFF):
        raise SubmissionPaused(5, reason + " A test submission is under way.")


def record_submit(exc=None, seen=None):
    """Count a submit's outcome. ``seen`` is the breaker state read before the call (a
    trial is only ever let through with one): when there was none and PixelByte
    answered, there is nothing to clear. A 429 starts the shared pause."""
    if isinstance(exc, pixelbyte.RateLimited):
        pause(exc.retry_after)
    if exc is None or not isinstance(exc, BREAKER_FAILURES):
        if seen:  # PixelByte answered: it is up
            cache.delete_many([BREAKER_KEY, BREAKER_TRIAL_KEY])
        return
    state = cache.get(BREAKER_KEY) or {"failures": 0, "open_until": 0}
    state["failures"] += 1
    if state["failures"] >= BREAKER_THRESHOLD:
        state["open_until"] = time.time() + settings.PIXELBYTE_BREAKER_COOLOFF
        cache.delete(BREAKER_TRIAL_KEY)
        log.warning("%s submits in a row got no answer: pausing submissions", state["failures"])
    cache.set(BREAKER_KEY, state, timeout=None)
