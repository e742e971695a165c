#!/usr/bin/env python
"""``make screenshots``: every page of the studio at desktop and phone size, light and dark.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only job,spend]

It builds a throwaway SQLite database in a temporary folder (its own media folder too),
fills it with demo data — ``manage.py generate_jobs`` with a small count, a few videos
made through the built-in sandbox and kept by the archiver, a stack of three, a stuck, a
failed and a cancelled job, stars, a share link, an API token and an approval request —
serves the studio (and so its sandbox) from a thread on a free loopback port, and writes
``<page>-<width>-<scheme>.png`` with Debian's chromium through Playwright.

A page whose URL the studio does not have yet (no such URL name, or a 404) is skipped
and said so, so the script runs while pages are still being built and picks them up
later. Nothing outside the temporary folder and the output folder is touched.
"""

import argparse
import io
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sandbox" / "samples"
SIZES = ((1366, 900), (390, 844))
SCHEMES = ("light", "dark")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
DEMO_PASSWORD = "kling-demo"
STANDARD = {"quality": "std", "duration": "5"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def configure(folder, port):
    """Point the settings at the throwaway folder and this process's own server, whatever
    .env says (the environment wins over .env)."""
    address = f"127.0.0.1:{port}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "kling_studio.settings",
            "DEBUG": "true",
            "HTTPS": "false",
            "DATABASE_URL": f"sqlite:///{folder / 'studio.sqlite3'}",
            "TEST_DATABASE_URL": "",
            "MEDIA_ROOT": str(folder / "media"),
            "AWS_STORAGE_BUCKET_NAME": "",
            "AWS_S3_ENDPOINT_URL": "",
            "PIXELBYTE_API_KEY": "",
            "PIXELBYTE_WEBHOOK_SECRET": "",
            "STUDIO_ADDRESS": address,
            "PUBLIC_BASE_URL": f"http://{address}",
            "SANDBOX_API_URL": f"http://{address}/sandbox",
            "SANDBOX_PENDING_SECONDS": "0.3",
            "SANDBOX_PROCESSING_SECONDS": "0.6",
            "DISPLAY_TIME_ZONE": "UTC",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


class Server:
    """The whole studio over HTTP on loopback, in a thread of this process (so the sandbox's
    jobs, kept in memory, are the ones the data below was made with)."""

    def __init__(self, port):
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        self.server = ThreadedWSGIServer(("127.0.0.1", port), Quiet, allow_reuse_address=True)
        self.server.set_app(StaticFilesHandler(WSGIHandler()))
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# --- the demo data ------------------------------------------------------------------------


class Shown:
    """What the pages are shown with; the ids the page list needs."""

    def __init__(self):
        self.kept = {}  # aspect ratio → a job kept by the archiver
        self.stuck = None
        self.share_token = None
        self.compare_ids = []


def build(demo_data):
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("create_demo_user", stdout=io.StringIO())
    call_command(
        "generate_jobs",
        jobs=150,
        teams=2,
        people=8,
        days=70,
        in_flight=3,
        prefix="studio",
        password=DEMO_PASSWORD,
        seed=7,
        stdout=io.StringIO(),
    )
    user = get_user_model()
    demo = user.objects.get(username="demo")
    team = join_the_demo_team(demo)
    keep_generated_videos()
    member = user.objects.get(username="studio-001")
    make_through_the_sandbox(demo, member, team, demo_data)
    mark_and_share(demo, demo_data)
    return demo


def join_the_demo_team(demo):
    """The first generated team's people and jobs become the demo team's, so the demo
    account (its manager) has a busy team to look at."""
    from django.utils import timezone

    from jobs import rollup
    from jobs.models import Job, Profile, Team

    team = Team.objects.get(name="Demo team")
    generated = Team.objects.get(name="Studio team 01")
    Profile.objects.filter(team=generated).update(team=team)
    Job.objects.filter(team=generated).update(team=team)
    generated.delete()
    rollup.rebuild()
    # A member's job over $0.50 waits for a manager; the month's budget has room left.
    team.approval_above_micro_cents = 500_000
    spent = Job.objects.filter(team=team).in_period(month_start(), timezone.now()).spend()
    team.monthly_budget_micro_cents = (spent * 3 // 2 // 5_000_000 + 2) * 5_000_000
    team.save(update_fields=["approval_above_micro_cents", "monthly_budget_micro_cents"])
    return team


def month_start():
    from django.utils import timezone

    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def keep_generated_videos():
    """Keep a sample video, thumbnail and poster (in the job's shape) for every generated job
    that completed, as tests/helpers.make_archived does, so no page reaches for the made-up
    CDN the generator names."""
    import hashlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from jobs import rollup
    from jobs.models import ArchivedFile, ArchiveStatus, FileKind, Job, Status

    files = {
        FileKind.VIDEO: ("sample-{}.mp4", "video/mp4"),
        FileKind.THUMBNAIL: ("thumb-{}.jpg", "image/jpeg"),
        FileKind.POSTER: ("poster-{}.jpg", "image/jpeg"),
    }
    for job in Job.objects.filter(status=Status.COMPLETED, archive_status=""):
        shape = job.aspect_ratio.replace(":", "x")
        for kind, (pattern, content_type) in files.items():
            data = (SAMPLES / pattern.format(shape)).read_bytes()
            name = default_storage.save(f"videos/demo/{job.pk}-{pattern.format(shape)}", ContentFile(data))
            ArchivedFile.objects.create(
                job=job,
                kind=kind,
                name=name,
                size=len(data),
                content_type=content_type,
                sha256=hashlib.sha256(data).hexdigest(),
            )
    Job.objects.filter(status=Status.COMPLETED, archive_status="").update(
        archive_status=ArchiveStatus.ARCHIVED
    )
    rollup.rebuild()  # the files written here count in the storage figures


def submit(user, prompt, ratio="16:9", count=1, **options):
    from jobs import pricing, submission

    params = {"prompt": prompt, **STANDARD, "aspect_ratio": ratio, **options}
    key = uuid.uuid4()
    if count > 1 and hasattr(submission, "submit_stack"):
        return submission.submit_stack(
            user=user, model=pricing.DEFAULT_MODEL, params=params, count=count, submission_key=key
        )
    return [submission.submit_job(user=user, model=pricing.DEFAULT_MODEL, params=params, submission_key=key)]


def make_through_the_sandbox(demo, member, team, data):
    """Videos made the real way: sent to the sandbox, finished by its webhooks and the sync
    worker's read-back, copied by the archiver."""
    from django.conf import settings
    from django.test import RequestFactory

    from jobs import archive, submission
    from jobs.management.commands.sync_jobs import Command
    from jobs.models import Job, Status

    for ratio, prompt in (
        ("9:16", "A barista pouring latte art in a sunlit café, close up, slow push in"),
        ("1:1", "A paper boat drifting down a rainy street gutter, macro lens"),
        ("16:9", "A lighthouse on a cliff at dusk, waves crashing, slow aerial orbit"),
    ):
        data.kept[ratio] = submit(demo, prompt, ratio)[0]
    stack = submit(demo, "A red fox trotting through fresh snow, golden hour", "16:9", count=3)
    data.compare_ids = [job.pk for job in stack][:3]
    submit(demo, "A bridge that will not render [fail]", "16:9")
    data.stuck = submit(demo, "A vintage train that never arrives [stuck]", "16:9")[0]
    # A member's Pro 10 s video ($0.675) is over the team's $0.50 rule: it waits for the demo.
    submit(
        member,
        "Product shot of a sneaker on a turntable, studio lighting",
        "1:1",
        quality="pro",
        duration="10",
    )

    settings.SANDBOX_PENDING_SECONDS = 60  # one that stays in the queue, to be cancelled
    queued = submit(demo, "A hot air balloon over vineyards at sunrise", "16:9")[0]
    request = RequestFactory().post("/")
    request.user = demo
    submission.cancel_and_record(queued, request)

    deadline = time.monotonic() + 30
    moving = Job.objects.filter(owner=demo, status__in=(Status.PENDING, Status.PROCESSING))
    # Every video finished, and the stuck one out of the queue (it stays generating).
    while (
        moving.exclude(pk=data.stuck.pk).exists()
        or moving.filter(pk=data.stuck.pk, status=Status.PENDING).exists()
    ):
        if time.monotonic() > deadline:
            raise SystemExit("The sandbox's videos did not finish within 30 s.")
        Command().sync_once()
        time.sleep(0.3)
    archive.run_pass()
    for ratio, job in data.kept.items():
        job.refresh_from_db()
        if job.archive_status != "archived":
            raise SystemExit(f"The {ratio} sample was not kept: {job.archive_error or job.archive_status}.")
    # The stuck one is stuck once it has run three times longer than expected.
    while not Job.objects.get(pk=data.stuck.pk).is_stuck():
        time.sleep(0.2)


def mark_and_share(demo, data):
    """Stars and ratings, a share link and an API token, through the studio's own functions
    where they exist (pages still being built may not have them yet)."""
    from jobs import tokens
    from jobs.models import Job, JobMark, ShareLink, Status

    completed = list(Job.objects.filter(status=Status.COMPLETED).order_by("-created_at")[:12])
    for n, job in enumerate(completed[::2]):
        JobMark.objects.update_or_create(user=demo, job=job, defaults={"starred": True, "rating": 5 - n % 3})
    job = data.kept["9:16"]
    try:
        from jobs import share

        link = share.create(job, by=demo, expires_at=share.expiry(), show_prompt=True)
    except (ImportError, AttributeError, TypeError):
        from datetime import timedelta

        from django.utils import timezone

        link = ShareLink.objects.create(
            job=job,
            token=uuid.uuid4().hex,
            show_prompt=True,
            created_by=demo,
            expires_at=timezone.now() + timedelta(days=7),
        )
    data.share_token = link.token
    tokens.create(demo, name="Render farm script")


# --- the pages ------------------------------------------------------------------------------


def pages(data):
    """(file name, URL name, arguments, query, signed in) of every page."""
    kept = data.kept["9:16"].pk
    compare = ",".join(map(str, data.compare_ids))
    return [
        ("new-video", "jobs:new", (), "", True),
        ("history-list", "jobs:list", (), "?view=list&per_page=12", True),
        ("history-grid", "jobs:list", (), "?view=grid&per_page=12", True),
        ("job", "jobs:detail", (kept,), "", True),
        ("job-square", "jobs:detail", (data.kept["1:1"].pk,), "", True),
        ("job-stuck", "jobs:detail", (data.stuck.pk,), "", True),
        ("compare", "jobs:compare", (), f"?ids={compare}", True),
        ("spend", "jobs:spend", (), "", True),
        ("approvals", "jobs:approvals", (), "", True),
        ("audit", "jobs:audit", (), "", True),
        ("tokens", "jobs:tokens", (), "", True),
        ("account", "jobs:account", (), "", True),
        ("share", "jobs:shared", (data.share_token,), "", False),
        ("sign-in", "login", (), "", False),
    ]


def address_of(name, args, query):
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name, args=args) + query
    except NoReverseMatch:
        return None


def session_cookie(user, url):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": url}


# Lazy pictures below the fold would stay blank in a full-page shot: load them all, then wait
# for every picture and every player's first frame (or its poster).
SETTLE = """async () => {
  document.querySelectorAll('img[loading="lazy"]').forEach((img) => { img.loading = "eager"; });
  const pictures = [...document.images].map((img) => img.complete ? null :
    new Promise((done) => { img.onload = img.onerror = done; }));
  const idle = (video) => video.readyState >= 1 && video.networkState !== video.NETWORK_LOADING;
  const players = [...document.querySelectorAll("video")].map((video) => new Promise((done) => {
    const started = Date.now();
    const look = () => (idle(video) || Date.now() - started > 5000 ? done() : setTimeout(look, 100));
    look();
  }));
  await Promise.all([...pictures, ...players]);
}"""


def shoot(server, demo, data, out, only):
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("Debian's chromium is not installed: `make screenshots` installs it.")
    written, skipped = 0, []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        for name, url_name, args, query, signed_in in pages(data):
            if only and name not in only:
                continue
            user = demo if signed_in else None
            path = address_of(url_name, args, query)
            why = f"no URL named {url_name}" if path is None else missing(path, user)
            if why:
                skipped.append((name, why))
                continue
            for scheme in SCHEMES:
                for width, height in SIZES:
                    shot(
                        browser,
                        server.url,
                        path,
                        user,
                        scheme,
                        width,
                        height,
                        out / f"{name}-{width}-{scheme}.png",
                    )
                    written += 1
            print(f"  {name}: {path}")
        browser.close()
    for name, why in skipped:
        print(f"Skipped {name}: {why} (not built yet?)")
    where = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"Wrote {written} screenshots into {where}/.")


def missing(path, user):
    """Why ``path`` cannot be shown yet (it answers 404), or None."""
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    if user is not None:
        client.force_login(user)
    status = client.get(path).status_code
    if status == 404:
        return f"{path} answers 404"
    if status >= 400:
        raise SystemExit(f"{path} answered {status}.")
    return None


def shot(browser, base, path, user, scheme, width, height, file):
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=scheme, timezone_id="UTC"
    )
    try:
        if user is not None:
            context.add_cookies([session_cookie(user, base)])
        page = context.new_page()
        response = page.goto(base + path, wait_until="load")
        if response is None or response.status >= 400:
            raise SystemExit(f"{path} answered {response.status if response else 'nothing'} in the browser.")
        page.evaluate(SETTLE)
        # A player shows its loading spinner a moment longer than it loads.
        page.wait_for_timeout(1500 if page.locator("video").count() else 300)
        page.screenshot(path=str(file), full_page=True)
    finally:
        context.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"), help="where the PNGs go")
    parser.add_argument("--only", default="", help="comma-separated page names (default: every page)")
    options = parser.parse_args()
    out = Path(options.out).resolve()
    only = {name.strip() for name in options.only.split(",") if name.strip()}
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop shares this thread
    with tempfile.TemporaryDirectory(prefix="kling-screenshots-") as folder:
        port = free_port()
        configure(Path(folder), port)
        server = Server(port)
        try:
            print(f"Building the demo data in {folder} …")
            data = Shown()
            demo = build(data)
            out.mkdir(parents=True, exist_ok=True)
            if not only:
                for old in out.glob("*.png"):
                    old.unlink()
            shoot(server, demo, data, out, only)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
