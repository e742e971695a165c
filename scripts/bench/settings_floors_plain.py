"""settings_floors without the studio's own middleware (its CSP, time zone and busy-page
layers): the authenticated floor with and without them gives the middleware ratio."""

from settings_floors import *  # noqa: F403

MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("jobs.")]  # noqa: F405
