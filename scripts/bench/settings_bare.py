"""The studio's settings with no middleware at all: the floor `make bench` compares the
default middleware stack against (P-08). Never for serving people."""

from kling_studio.settings import *  # noqa: F403

MIDDLEWARE = []
