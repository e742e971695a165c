"""A fresh or upgraded installation does what Django operators expect."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fresh_env(tmp_path):
    return {
        **{k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "kling_studio.settings",
    }


def manage(*args, env, **kwargs):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_migrate_alone_makes_a_working_studio(tmp_path):
    """What an operator runs on a new or upgraded installation: `migrate`, nothing else."""
    env = fresh_env(tmp_path)
    manage("migrate", "--noinput", "-v", "0", env=env, check=True)
    script = (
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "from django.contrib.auth.models import User; from django.test import Client\n"
        "User.objects.create_user('ann', password='a long enough password')\n"
        "c = Client()\n"
        "print(c.post('/accounts/login/', {'username': 'ann', 'password': 'nope'}).status_code)\n"
        "print(c.post('/accounts/login/', {'username': 'ann', 'password': 'a long enough password'},"
        " follow=True).status_code)\n"
        "print('_auth_user_id' in c.session)\n"
    )
    out = manage("shell", "-v", "0", "-c", script, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200", "200", "True"]


def test_commands_on_sqlite_print_no_index_warning(tmp_path):
    env = fresh_env(tmp_path)
    for command in (["migrate", "--noinput"], ["check", "--database", "default"]):
        out = manage(*command, env=env)
        assert out.returncode == 0, out.stderr
        assert "W040" not in out.stdout + out.stderr, command
