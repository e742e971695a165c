"""Sign-in throttling on every surface: the studio's page, the admin's, and under concurrency."""

import threading
from io import StringIO

import pytest
import requests
from django.contrib.auth.base_user import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from .helpers import PASSWORD, make_user


@pytest.fixture
def eve(settings, db):
    settings.LOGIN_MAX_FAILURES = 5
    return make_user("eve")


def sign_in(client, username, password, url=None, ip="203.0.113.5"):
    return client.post(url or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(client):
    return "_auth_user_id" in client.session


def test_lookalike_usernames_share_one_lockout(client, eve):
    for name in ("eve", "ｅve", "eｖe", "ⓔve", "EVE"):
        assert sign_in(client, name, "wrong").status_code == 200
    for name in ("ｅｖｅ", "𝐞𝐯𝐞", "eve"):
        refused = sign_in(client, name, PASSWORD)
        assert refused.status_code == 429, name
        assert "Too many wrong passwords" in refused.content.decode()
        assert not signed_in(client)


def test_a_lookalike_name_still_signs_in_as_the_person_when_not_locked(client, eve):
    assert sign_in(client, "ｅｖｅ", PASSWORD).status_code == 302
    assert signed_in(client)


def test_the_admin_sign_in_is_throttled_like_the_studios(client, settings, db):
    settings.LOGIN_MAX_FAILURES = 5
    make_user("root", is_staff=True, is_superuser=True)
    admin_login = reverse("admin:login")
    for _ in range(30):
        sign_in(client, "root", "wrong", url=admin_login)
    refused = sign_in(client, "root", PASSWORD, url=admin_login)
    assert not signed_in(client)
    assert "Too many wrong passwords" in refused.content.decode()
    # one counter for both doors
    assert sign_in(Client(), "root", PASSWORD).status_code == 429


def test_wrong_passwords_at_the_admin_count_at_the_studio_door_too(client, settings, db):
    settings.LOGIN_MAX_FAILURES = 3
    make_user("root", is_staff=True, is_superuser=True)
    for _ in range(3):
        sign_in(client, "root", "wrong", url=reverse("admin:login"))
    assert sign_in(Client(), "root", PASSWORD).status_code == 429


class CountingChecks:
    """Counts the passwords Django actually checks, from every thread of this process."""

    def __init__(self, monkeypatch):
        self.count = 0
        self.lock = threading.Lock()
        original = AbstractBaseUser.check_password

        def counting(user, raw_password):
            with self.lock:
                self.count += 1
            return original(user, raw_password)

        monkeypatch.setattr(AbstractBaseUser, "check_password", counting)


def _guess(url, barrier, results):
    session = requests.Session()
    page = session.get(url, timeout=30)
    token = session.cookies["csrftoken"]
    barrier.wait(timeout=30)
    answer = session.post(
        url,
        data={"username": "eve", "password": "wrong", "csrfmiddlewaretoken": token},
        headers={"Referer": url},
        timeout=60,
        allow_redirects=False,
    )
    results.append((page.status_code, answer.status_code))


@pytest.mark.django_db(transaction=True)
def test_concurrent_guesses_check_at_most_the_allowed_number_of_passwords(live_server, settings, monkeypatch):
    settings.LOGIN_MAX_FAILURES = 5
    make_user("eve")
    checks = CountingChecks(monkeypatch)
    url = live_server.url + reverse("login")
    guessers = 40
    barrier, results = threading.Barrier(guessers), []
    threads = [threading.Thread(target=_guess, args=(url, barrier, results)) for _ in range(guessers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert len(results) == guessers
    assert {answer for _, answer in results} <= {200, 429}
    assert checks.count <= settings.LOGIN_MAX_FAILURES
    assert sum(answer == 429 for _, answer in results) >= guessers - settings.LOGIN_MAX_FAILURES


def test_the_worker_forgets_sign_in_counts_whose_window_has_passed(client, eve, settings):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from jobs.models import SignInThrottle

    sign_in(client, "eve", "wrong")
    sign_in(client, "eve", "wrong", ip="198.51.100.7")
    SignInThrottle.objects.filter(pk=SignInThrottle.objects.first().pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    call_command("sync_jobs", stdout=StringIO())
    assert SignInThrottle.objects.count() == 1
