"""WSGI entry point (gunicorn kling_studio.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kling_studio.settings")

application = get_wsgi_application()
