"""Run by tests/test_security.py in a child process with production settings.

Migrates a throwaway SQLite file, signs a user in over "HTTPS" and reports what a
browser would see: cookies and security headers, as JSON on stdout.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kling_studio.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402


def cookie_flags(morsel):
    return {
        "secure": bool(morsel["secure"]),
        "httponly": bool(morsel["httponly"]),
        "samesite": morsel["samesite"],
    }


def main():
    call_command("collectstatic", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)
    User = get_user_model()
    User.objects.filter(username="probe").delete()
    User.objects.create_user("probe", password="a long enough password 1")
    host = "studio.example"
    client = Client(HTTP_HOST=host)
    login_page = client.get("/accounts/login/", secure=True)
    response = client.post(
        "/accounts/login/",
        {"username": "probe", "password": "a long enough password 1", "next": "https://evil.example/"},
        secure=True,
    )
    page = client.get("/", secure=True)
    forwarded = Client(HTTP_HOST=host).get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    bad_host = Client(HTTP_HOST="evil.example").get("/accounts/login/", secure=True)
    report = {
        "login_status": response.status_code,
        "login_redirect": response.get("Location", ""),
        "session_cookie": cookie_flags(response.cookies["sessionid"]),
        "csrf_cookie": cookie_flags(login_page.cookies["csrftoken"]),
        "headers": {
            name: page.get(name, "")
            for name in (
                "Strict-Transport-Security",
                "X-Frame-Options",
                "X-Content-Type-Options",
                "Referrer-Policy",
                "Content-Security-Policy",
            )
        },
        "forwarded_proto_status": forwarded.status_code,
        "bad_host_status": bad_host.status_code,
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
