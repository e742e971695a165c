"""Configuration: defaults that run locally, loud failures on bad values, no missing migration."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


def run_check(env_overrides):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PIXELBYTE_", "DATABASE_URL", "SECRET_KEY", "DEBUG"))
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_no_model_change_is_missing_a_migration(db):
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_defaults_run_with_no_configuration():
    result = run_check({})
    assert result.returncode == 0, result.stderr


def test_debug_off_with_the_default_secret_key_refuses_to_start():
    result = run_check({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set to a long random value" in result.stderr


def test_debug_off_with_a_short_or_insecure_key_refuses_to_start():
    for key in ("short", "django-insecure-" + "x" * 60):
        result = run_check({"DEBUG": "0", "SECRET_KEY": key})
        assert result.returncode != 0, key


def test_a_bad_boolean_fails_loudly():
    result = run_check({"DEBUG": "perhaps"})
    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'perhaps'" in result.stderr


def test_a_real_key_without_a_webhook_secret_is_flagged_without_showing_the_key():
    result = run_check({"PIXELBYTE_API_KEY": "pb_live_abcdef123456"})
    output = result.stdout + result.stderr
    assert "jobs.W002" in output
    assert "pb_live_abcdef123456" not in output


def test_the_demo_user_command_prints_its_credentials(db):
    out = StringIO()
    call_command("create_demo_user", stdout=out)
    call_command("create_demo_user", stdout=out)
    assert "username 'demo', password 'kling-demo'" in out.getvalue()


def test_wh08_a_webhook_tolerance_of_zero_or_none_stops_startup(settings):
    from jobs.checks import check_webhook_settings

    for bad in (0, -5, None, 100000):
        settings.PIXELBYTE_WEBHOOK_TOLERANCE = bad
        assert [e.id for e in check_webhook_settings(None)][:1] == ["jobs.E002"], bad
    result = run_check({"PIXELBYTE_WEBHOOK_TOLERANCE": "0"})
    assert result.returncode != 0 and "jobs.E002" in result.stderr


def studio_urls(env_overrides):
    """PUBLIC_BASE_URL and SANDBOX_API_URL as a fresh process computes them."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PUBLIC_BASE_URL", "SANDBOX_API_URL", "STUDIO_ADDRESS", "DATABASE_URL")
    }
    env.update(env_overrides)
    code = "from django.conf import settings as s; print(s.PUBLIC_BASE_URL); print(s.SANDBOX_API_URL)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_item15_the_studio_calls_itself_on_the_address_make_run_serves():
    assert studio_urls({"STUDIO_ADDRESS": "127.0.0.1:8300"}) == [
        "http://127.0.0.1:8300",
        "http://127.0.0.1:8300/sandbox",
    ]
    # runserver on every interface is reached on loopback, a name the studio answers to
    assert studio_urls({"STUDIO_ADDRESS": "0.0.0.0:8300"})[0] == "http://127.0.0.1:8300"


def test_item15_explicit_urls_win_over_the_address_make_run_serves():
    explicit = {
        "STUDIO_ADDRESS": "127.0.0.1:8300",
        "PUBLIC_BASE_URL": "https://studio.example",
        "SANDBOX_API_URL": "http://127.0.0.1:9100/sandbox",
    }
    assert studio_urls(explicit) == ["https://studio.example", "http://127.0.0.1:9100/sandbox"]


def test_item15_a_malformed_studio_address_fails_loudly():
    result = run_check({"STUDIO_ADDRESS": "8300"})
    assert result.returncode != 0 and "STUDIO_ADDRESS must be host:port" in result.stderr


def test_item9_a_sandbox_cap_below_one_fails_loudly():
    result = run_check({"SANDBOX_MAX_JOBS": "0"})
    assert result.returncode != 0 and "SANDBOX_MAX_JOBS" in result.stderr
