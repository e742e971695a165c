"""The studio's settings with the floor views of floors.py added (`make bench` only)."""

from kling_studio.settings import *  # noqa: F403

ROOT_URLCONF = "floors"
