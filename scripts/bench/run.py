"""`make bench`: measure the studio on this machine and write docs/benchmarks.md.

Needs PostgreSQL, wrk and Debian's chromium; `make bench` installs them. Every headline
figure is a ratio of two numbers measured in this one run, so a slow or busy machine
changes the times but not the verdicts.

1. Two databases, small (1,000 jobs) and large (2,000,000), filled by
   `manage.py generate_jobs` into template databases that are kept between runs (with a
   fingerprint of the code and settings that made them) and copied for each run.
2. Server time and SQL queries of the history, job page, status JSON and spend
   dashboard at each size (in-process, Django's test client), and the budget-check
   transaction alone at each size.
3. Throughput through gunicorn on loopback with wrk: the webhook receiver and the
   status JSON against a bare view (/healthz), persistent against per-request
   database connections, and the middleware stack against none; then each page against
   the floor a view of its shape can reach (floors.py): the status JSON and the job page
   against an authenticated one-row JSON view, the webhook receiver against an
   HMAC-and-one-update view, and that authenticated floor with and without the studio's
   own middleware.
4. Submission overhead against the sandbox with a fixed delay (the form posted plainly
   and as its page's script posts it); the budget-check transaction alone and under 20
   submitters; the live price preview in Chromium.
5. Keeping the videos: the archiver copying a 200 MB output from a loopback server
   against a plain streamed copy of it, and its peak memory; 1 MB ranges early and
   late in a 1 GB kept video and a zip of 100 kept videos through gunicorn, with the
   worker's peak memory (media_tasks.py).
6. `manage.py verify_spend` against the large database, the run's own writes included.

PostgreSQL: BENCH_DATABASE_URL names a server to use; without it the run starts its own
cluster in BENCH_PGDATA (default /var/tmp/kling-studio-bench), kept between runs so the
generated data is too, and stops it at the end. Generating the large set takes a few
minutes; a later run with the same code copies it in seconds.
"""

import fcntl
import hashlib
import hmac
import json
import os
import platform
import pwd
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import media_tasks  # noqa: E402 - beside this script

from sandbox.engine import api_key_for  # noqa: E402 - the project's root is on the path only now

BENCH = Path(__file__).resolve().parent
PY = sys.executable
TASKS = BENCH / "tasks.py"
MEDIA_TASKS = BENCH / "media_tasks.py"
REPORT = ROOT / "docs" / "benchmarks.md"
NOTES = BENCH / "notes.md"

SMALL = 1_000
LARGE = int(os.environ.get("BENCH_LARGE_JOBS", "2000000"))
SEED = 1
# What the generated rows depend on: a change to any of these makes the data again.
DATA_SOURCES = [
    "jobs/management/commands/generate_jobs.py",
    "jobs/migrations",
    "jobs/models.py",
    "jobs/pricing.py",
    "jobs/rollup.py",
    "jobs/rollup_sql.py",
]
# Kept across reboots, and reachable by the postgres account (a root's home is not); checked
# to belong to this user or that account before it is used.
CLUSTER = Path(os.environ.get("BENCH_PGDATA", "/var/tmp/kling-studio-bench"))  # noqa: S108
WRK_SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
WRK_THREADS, WRK_CONNECTIONS = 2, 12
WORKERS, THREADS = 3, 4  # as docs/deploy.md serves the studio
SANDBOX_DELAY = 0.2
SUBMITS = 30
PREVIEW_CHANGES = 40
WEBHOOK_DELIVERIES = 6000
ARCHIVE_MB, ARCHIVE_RUNS = 200, 5
RANGE_GB, RANGE_MB, RANGE_SAMPLES = 1, 1, 40
ZIP_VIDEOS, ZIP_VIDEO_MB = 100, 2
MEMORY_LIMIT_MIB = 64


# The headers the page's script sends with the form (static/js/tray.js): a post made this
# way is answered as the page's script is answered.
IN_PLACE = {"Accept": "text/html", "X-Requested-With": "fetch"}


class NotMeasured(Exception):
    """A part of the run that could not be measured; the report says why."""


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL and the generated data kept between runs ------------------------------------


def fingerprint(jobs, in_flight):
    """What made a generated database: the code its rows depend on, the counts and the seed."""
    digest = hashlib.sha256(f"jobs={jobs} in_flight={in_flight} seed={SEED}".encode())
    for source in DATA_SOURCES:
        path = ROOT / source
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or not file.exists():
                continue
            digest.update(b"\0" + file.relative_to(ROOT).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def read_comment(text):
    """The facts a template database's comment keeps about its data ({} for none)."""
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def generator_times(said):
    """The seconds ``generate_jobs`` reports for writing the jobs and rebuilding the rollup."""
    found = re.search(r"Jobs written (.+?) in ([\d.]+) s; spend rollup rebuilt in ([\d.]+) s", said)
    if not found:
        return {}
    return {"written_how": found.group(1), "write_seconds": float(found.group(2)),
            "rollup_seconds": float(found.group(3))}  # fmt: skip


def pg_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise SystemExit("PostgreSQL is missing: `make bench` installs it (or set BENCH_DATABASE_URL).")
    return found[-1].parent


def as_postgres(*args):
    """A PostgreSQL program's command line; as root, run as the postgres account (PostgreSQL
    refuses to run as root)."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    return [*prefix, *(str(a) for a in args)]


@contextmanager
def own_cluster():
    """Start the cluster kept in CLUSTER (made if missing, made again if it will not start:
    it only holds data the run can generate again); yield its URL; stop it."""
    CLUSTER.mkdir(parents=True, exist_ok=True)
    if CLUSTER.stat().st_uid not in {
        os.getuid(),
        pwd.getpwnam("postgres").pw_uid if os.getuid() == 0 else -1,
    }:
        raise SystemExit(f"{CLUSTER} belongs to someone else: set BENCH_PGDATA to a folder of yours.")
    with open(CLUSTER / "bench.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"Another make bench is using {CLUSTER}: wait for it to finish.") from None
        binaries, data, port = pg_bin(), CLUSTER / "db", free_port()
        # A run killed before it could stop its server leaves that server running.
        subprocess.run(
            as_postgres(binaries / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"), capture_output=True
        )
        if not start_cluster(binaries, data, port):
            log(f"the PostgreSQL cluster kept in {data} did not start: making a new one")
            shutil.rmtree(data, ignore_errors=True)
            if not start_cluster(binaries, data, port):
                raise SystemExit(f"PostgreSQL did not start: see {CLUSTER / 'postgres.log'}")
        try:
            yield f"postgres://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run(
                as_postgres(binaries / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"), capture_output=True
            )


def start_cluster(binaries, data, port):
    """Make the cluster if it is missing and start it, as scripts/with-postgres does (so the
    figures stay comparable with earlier runs); whether it started."""
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            for path in (CLUSTER, data):
                shutil.chown(path, "postgres")
        initdb = as_postgres(binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if subprocess.run(initdb, capture_output=True).returncode != 0:
            return False
    logfile = CLUSTER / "postgres.log"
    logfile.unlink(missing_ok=True)
    options = f"-p {port} -k {CLUSTER} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    start = as_postgres(binaries / "pg_ctl", "-D", data, "-l", logfile, "-w", "start", "-o", options)
    return subprocess.run(start, capture_output=True).returncode == 0


class Bench:
    def __init__(self):
        self.work = Path(tempfile.mkdtemp(prefix="kling-bench-"))
        self.sandbox_port = free_port()
        self.server_url = None  # set by postgres()
        environment = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
        self.env = {
            **environment,
            "DEBUG": "false",
            "HTTPS": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
            "PIXELBYTE_API_KEY": "",
            "PIXELBYTE_WEBHOOK_SECRET": secrets.token_urlsafe(32),
            "PUBLIC_BASE_URL": "",
            "SANDBOX_API_URL": f"http://127.0.0.1:{self.sandbox_port}/sandbox",
            "LOGIN_MAX_FAILURES": "1000",
            # The load tests read through one token far faster than any script would.
            "API_RATE_LIMIT": "100000000",
            "LOG_LEVEL": "WARNING",
            "CONN_MAX_AGE": "60",
            "STATIC_ROOT": str(self.work / "static"),
            "MEDIA_ROOT": str(self.work / "media"),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{BENCH}",
        }
        self.results = {"commands": []}
        self.processes = []

    # --- helpers --------------------------------------------------------------------

    def run(self, args, env=None, capture=False):
        shown = " ".join(str(a) for a in args)
        log(shown)
        done = subprocess.run(
            [str(a) for a in args],
            cwd=ROOT,
            env=env or self.env,
            check=True,
            text=True,
            stdout=subprocess.PIPE if capture else None,
        )
        return done.stdout

    def task(self, database, *args):
        return json.loads(self.run([PY, TASKS, *args], self.db_env(database), capture=True))

    def db_url(self, name):
        parts = urlsplit(self.server_url)
        return urlunsplit(parts._replace(path="/" + name))

    def db_env(self, database, **extra):
        return {**self.env, "DATABASE_URL": self.db_url(database), **extra}

    def manage(self, database, *args):
        self.run([PY, "manage.py", *args], self.db_env(database))

    # --- 1. data --------------------------------------------------------------------------

    @contextmanager
    def postgres(self):
        """The run's PostgreSQL: BENCH_DATABASE_URL, else a cluster of its own in CLUSTER,
        kept between runs with the generated data and stopped at the end."""
        if os.environ.get("BENCH_DATABASE_URL"):
            self.server_url = os.environ["BENCH_DATABASE_URL"]
            if not self.server_url.startswith("postgres"):
                raise SystemExit("BENCH_DATABASE_URL must name a PostgreSQL server (postgres://…).")
            yield
            return
        with own_cluster() as url:
            self.server_url = url
            yield

    def admin(self):
        """An autocommit connection to the server's ``postgres`` database."""
        return psycopg.connect(self.db_url("postgres"), autocommit=True)

    def make_database(self, name, jobs, in_flight):
        """A fresh copy of the generated data (made into ``<name>_template`` first if that
        holds none, or data made by other code), and the fixtures the measurements use."""
        template = f"{name}_template"
        made = self.template(template, jobs, in_flight)
        start = time.monotonic()
        with self.admin() as admin:
            version = admin.execute("SHOW server_version_num").fetchone()[0]
            self.results["postgres"] = admin.execute("SHOW server_version").fetchone()[0].split()[0]
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            # A file copy: PostgreSQL 15's default (WAL_LOG) writes every page to the WAL too.
            strategy = sql.SQL(" STRATEGY FILE_COPY" if int(version) >= 150000 else "")
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}{}").format(
                    sql.Identifier(name), sql.Identifier(template), strategy
                )
            )
        made["copy_seconds"] = time.monotonic() - start
        log(f"{name}: copied from {template} in {made['copy_seconds']:.1f} s")
        self.results.setdefault("data", {})[name] = made
        return self.task(name, "fixtures")

    def template(self, template, jobs, in_flight):
        """What ``template`` holds: reused when its fingerprint (kept as the database's
        comment) is that of the data wanted, else generated again."""
        wanted = fingerprint(jobs, in_flight)
        with self.admin() as admin:
            row = admin.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [template]
            ).fetchone()
        kept = read_comment(row[0] if row else None)
        if kept.get("fingerprint") == wanted:
            log(f"{template}: reusing {jobs:,} jobs generated {kept['generated']} by the same code")
            return {**kept, "generated_now": False}
        log(
            f"{template}: generating {jobs:,} jobs"
            + (" (the code that made the last ones changed)" if kept else "")
        )
        start = time.monotonic()
        with self.admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(template)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
        self.manage(template, "migrate", "--noinput", "-v0")
        options = ["--jobs", jobs, "--in-flight", in_flight, "--seed", SEED]
        said = self.run([PY, "manage.py", "generate_jobs", *options], self.db_env(template), capture=True)
        print(said, end="", flush=True)
        vacuum = time.monotonic()
        with psycopg.connect(self.db_url(template), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        now = time.monotonic()
        made = {
            "fingerprint": wanted,
            "generated": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "jobs": jobs,
            "seconds": now - start,
            "vacuum_seconds": now - vacuum,
            **generator_times(said),
        }
        with self.admin() as admin:
            # Written last: a run stopped halfway leaves no fingerprint, so the next one starts over.
            admin.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(template), sql.Literal(json.dumps(made))
                )
            )
        log(f"{template}: {jobs:,} jobs generated in {made['seconds']:.0f} s")
        return {**made, "generated_now": True}

    # --- 3. servers and load --------------------------------------------------------------

    @contextmanager
    def gunicorn(self, database, name, workers=WORKERS, threads=THREADS, **extra):
        port = free_port()
        logfile = self.work / f"gunicorn-{name}.log"
        args = [
            PY, "-m", "gunicorn", "kling_studio.wsgi",
            "--bind", f"127.0.0.1:{port}",
            "--workers", workers, "--threads", threads, "--worker-connections", threads, "--timeout", 60,
        ]  # fmt: skip
        env = self.db_env(database, **extra)
        with open(logfile, "w") as out:
            process = subprocess.Popen([str(a) for a in args], cwd=ROOT, env=env, stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet, or still importing
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn ({name}) did not start:\n{logfile.read_text()[-3000:]}")
                time.sleep(0.2)
            # Warm every worker up (imports, connections, caches) before anything is measured.
            subprocess.run(
                ["wrk", "-t", "2", "-c", str(WRK_CONNECTIONS), "-d", "2s", url + "/healthz"],
                check=True,
                capture_output=True,
            )
            server = {"url": url, "log": logfile, "args": args, "pid": process.pid}
            yield server
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            server_errors = re.findall(r"Traceback|database is locked|\[ERROR\]", logfile.read_text())
            self.results.setdefault("server_errors", {})[name] = len(server_errors)

    def wrk(self, url, name, script=None, headers=()):
        args = ["wrk", "-t", WRK_THREADS, "-c", WRK_CONNECTIONS, "-d", f"{WRK_SECONDS}s", "--latency"]
        for header in headers:
            args += ["-H", header]
        if script:
            args += ["-s", script]
        out = self.run([*args, url], capture=True)
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
        p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        row = {
            "name": name,
            "rps": rate,
            "requests": total,
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
            "p50_ms": to_ms(p50),
            "p99_ms": to_ms(p99),
        }
        self.results.setdefault("load", []).append(row)
        log(f"{name}: {rate:.0f} req/s, {row['non_2xx']} non-2xx, {row['socket_errors']} socket errors")
        return row

    def load_tests(self, fixtures):
        session = f"Cookie: sessionid={fixtures['sessions'][fixtures['member']]}"
        status_path = "/jobs/status/?parts=status,thumb,cost&ids=" + ",".join(
            str(i) for i in fixtures["status_ids"]
        )
        with self.gunicorn("bench_large", "persistent") as server:
            self.results["gunicorn"] = "gunicorn " + " ".join(str(a) for a in server["args"][3:])
            self.wrk(server["url"] + "/healthz", "bare view (1)")
            hooks = self.task("bench_large", "webhooks", WEBHOOK_DELIVERIES)
            script = self.work / "webhooks.lua"
            script.write_text(hooks["script"])
            self.results["webhook_deliveries"] = hooks["deliveries"]
            self.wrk(server["url"], "webhook receiver", script=script)
            self.wrk(server["url"] + "/healthz", "bare view (2)")
            self.wrk(server["url"] + status_path, "status JSON", headers=[session])
            self.wrk(server["url"] + "/healthz", "bare view (3)")
        with self.gunicorn("bench_large", "per-request", CONN_MAX_AGE="0") as server:
            self.wrk(
                server["url"] + status_path, "status JSON, a new DB connection per request", headers=[session]
            )
        with self.gunicorn("bench_large", "no-middleware", DJANGO_SETTINGS_MODULE="settings_bare") as server:
            self.wrk(server["url"] + "/healthz", "bare view, no middleware")
        self.floors(fixtures, session)

    def floors(self, fixtures, session):
        """The studio's views against the floors a Django view of the same shape can reach
        (floors.py), in one server with the same settings."""
        job = fixtures["status_ids"][0]
        write = self.work / "write-floor.lua"
        body = '{"floor":true}'
        signature = hmac.new(self.env["PIXELBYTE_WEBHOOK_SECRET"].encode(), body.encode(), hashlib.sha256)
        write.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
            f'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-Signature"] = "{signature.hexdigest()}"\n'
        )
        with self.gunicorn("bench_large", "floors", DJANGO_SETTINGS_MODULE="settings_floors") as server:
            url = server["url"]
            self.wrk(f"{url}/bench/floor/read/{job}", "authenticated read floor", headers=[session])
            self.wrk(f"{url}/jobs/{job}/status/", "status JSON, one job", headers=[session])
            bearer = f"Authorization: Bearer {fixtures['tokens']['member']}"
            self.wrk(f"{url}/api/v1/jobs/{job}", "API job read, one job", headers=[bearer])
            self.wrk(f"{url}/jobs/{job}/", "job page", headers=[session])
            self.wrk(f"{url}/bench/floor/write/{job}", "webhook write floor", script=write)
        with self.gunicorn(
            "bench_large", "floors-plain", DJANGO_SETTINGS_MODULE="settings_floors_plain"
        ) as server:
            self.wrk(
                f"{server['url']}/bench/floor/read/{job}",
                "authenticated read floor, without the studio's middleware",
                headers=[session],
            )

    # --- 4. submission, budget lock, preview ------------------------------------------

    @contextmanager
    def sandbox(self):
        port = self.sandbox_port
        logfile = self.work / "sandbox.log"
        args = [PY, "-m", "gunicorn", "kling_studio.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"]
        env = self.db_env("bench_large", SANDBOX_SUBMIT_DELAY=str(SANDBOX_DELAY))
        with open(logfile, "w") as out:
            process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            for _ in range(300):
                try:
                    requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/sandbox"
        finally:
            process.terminate()
            process.wait(timeout=30)

    def submissions(self, fixtures):
        params = {
            "prompt": "A paper boat on a stream",
            "quality": "std",
            "duration": "5",
            "aspect_ratio": "16:9",
        }
        with self.sandbox() as sandbox, self.gunicorn("bench_large", "submit") as server:
            api = requests.Session()
            api.headers["Authorization"] = "Bearer " + api_key_for(self.env["SECRET_KEY"])
            studio = requests.Session()
            login = studio.get(server["url"] + "/accounts/login/")
            answer = studio.post(
                server["url"] + "/accounts/login/",
                data={
                    "username": fixtures["submitter"],
                    "password": fixtures["submitter_password"],
                    "csrfmiddlewaretoken": field(login.text, "csrfmiddlewaretoken"),
                },
                allow_redirects=False,
            )
            if answer.status_code != 302:
                raise SystemExit(f"could not sign in to the studio (HTTP {answer.status_code})")
            token = requests.Session()
            token.headers["Authorization"] = "Bearer " + fixtures["tokens"]["submitter"]
            direct, through, in_place, through_api = [], [], [], []
            model = "kling/kling-text2video-v25/text-to-video"
            for i in range(SUBMITS + 3):
                took = timed_post(
                    api, sandbox + "/v1/jobs/submit", 200, json={"model": model, "input": params}
                )
                took_studio = self.post_form(studio, server["url"], params)
                took_in_place = self.post_form(studio, server["url"], params, headers=IN_PLACE)
                took_api = timed_post(
                    token,
                    server["url"] + "/api/v1/jobs",
                    201,
                    json=params,
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
                if i >= 3:  # the first few warm the connections and caches
                    direct.append(took)
                    through.append(took_studio)
                    in_place.append(took_in_place)
                    through_api.append(took_api)
            self.results["submit"] = {
                "direct": direct,
                "studio": through,
                "in_place": in_place,
                "api": through_api,
                "delay": SANDBOX_DELAY,
            }
            self.preview(server["url"], fixtures)

    def post_form(self, studio, url, params, headers=None):
        """Seconds for one post of a freshly drawn prompt form (so a fresh submission key)."""
        form = studio.get(url + "/").text
        data = {
            **params,
            "seed": "",
            "project": "",
            "submission_key": field(form, "submission_key"),
            "csrfmiddlewaretoken": field(form, "csrfmiddlewaretoken"),
        }
        start = time.perf_counter()
        reply = studio.post(url + "/", data=data, headers=headers, allow_redirects=False)
        took = time.perf_counter() - start
        # Either answer (the whole form page, or the parts a post changes) has the new job in the tray.
        if reply.status_code != 200 or "data-tray-job" not in reply.text:
            how = "as its page's script does" if headers else "plainly"
            raise SystemExit(f"the studio did not accept the job posted {how} (HTTP {reply.status_code})")
        return took

    def preview(self, url, fixtures):
        from playwright.sync_api import sync_playwright

        executable = shutil.which("chromium")
        if executable is None:
            raise SystemExit("Debian's chromium is missing: `make bench` installs it.")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            self.results["chromium"] = browser.version
            context = browser.new_context()
            context.add_cookies(
                [{"name": "sessionid", "value": fixtures["sessions"][fixtures["member"]], "url": url}]
            )
            page = context.new_page()
            page.goto(url + "/")
            page.evaluate(PREVIEW_PROBE)
            choices = [("quality", "pro"), ("duration", "10"), ("quality", "std"), ("duration", "5")]
            before = page.text_content("#price-dollars")
            for i in range(PREVIEW_CHANGES + 4):
                name, value = choices[i % len(choices)]
                page.locator(f"label.segment:has(input[name='{name}'][value='{value}'])").click()
            samples = page.evaluate("window.__priceTimes")
            after = page.text_content("#price-dollars")
            browser.close()
        if len(samples) < PREVIEW_CHANGES or before == after == "—":
            raise SystemExit(f"the price preview did not react to the clicks ({len(samples)} changes seen)")
        samples = samples[4:]
        self.results["preview"] = {
            "dom": [s["dom"] for s in samples],
            "frame": [s["frame"] for s in samples],
        }

    # --- 5. keeping the videos ---------------------------------------------------------

    def media(self):
        self.results["media"] = {}
        self.measure_media("archive", self.archive_copy)
        self.measure_media("served", self.served_media)

    def measure_media(self, name, step, *args):
        """Run one part; one that cannot be measured is reported with its reason, and the
        run goes on."""
        media = self.results["media"]
        try:
            result = step(*args)
            if result is not None:
                media[name] = result
        except NotMeasured as exc:
            log(f"{name}: not measured: {exc}")
            media.setdefault("skipped", {})[name] = str(exc)

    def media_task(self, *args):
        """A step of media_tasks.py in its own process, against the small database."""
        shown = " ".join(str(a) for a in args)
        log(f"media_tasks.py {shown}")
        done = subprocess.run(
            [PY, MEDIA_TASKS, *(str(a) for a in args)],
            cwd=ROOT,
            env=self.db_env("bench_small"),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise NotMeasured(f"`media_tasks.py {args[0]}` failed: {last}")
        return json.loads(done.stdout)

    @contextmanager
    def file_server(self, folder):
        """Python's own threaded HTTP server on loopback, in a process of its own."""
        port = free_port()
        args = [PY, "-m", "http.server", port, "--bind", "127.0.0.1", "--directory", folder]
        process = subprocess.Popen(
            [str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            for _ in range(100):
                try:
                    requests.head(url, timeout=2)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)

    def archive_copy(self):
        """The archiver's download-and-store of a 200 MB output against a plain streamed
        copy of the same URL into the same folder, alternated, each in its own process."""
        served = self.work / "cdn"
        served.mkdir()
        with open(served / "output.mp4", "wb") as out:
            for _ in range(ARCHIVE_MB):
                out.write(os.urandom(1024 * 1024))
        (self.work / "media").mkdir(exist_ok=True)
        plain, studio = [], []
        with self.file_server(served) as url:
            for _ in range(ARCHIVE_RUNS):
                # Each copy starts with nothing of the last one still to be written back.
                os.sync()
                plain.append(self.media_task("copy", url + "output.mp4", self.work / "media" / "plain.mp4"))
                os.sync()
                studio.append(self.media_task("archive", url + "output.mp4"))
        (served / "output.mp4").unlink()
        return {"plain": plain, "studio": studio, "mb": ARCHIVE_MB, "sha256": sha256_rate()}

    def served_media(self):
        """Ranges in a 1 GB kept video, and the zip of 100 kept videos, through one gunicorn
        worker (so its memory is the one measured), signed in."""
        media = self.media_task("files", ZIP_VIDEOS, ZIP_VIDEO_MB, RANGE_GB)
        with self.gunicorn("bench_small", "media", workers=1) as server:
            (worker,) = Path(f"/proc/{server['pid']}/task/{server['pid']}/children").read_text().split()
            session = requests.Session()
            session.cookies.set("sessionid", media["session"])
            self.measure_media("range", self.ranges, session, server["url"] + media["video"], media)
            self.measure_media("zip", self.zip_export, session, server["url"] + media["zip"], worker, media)

    def ranges(self, session, url, media):
        """Time to last byte of 1 MB at 0 % and at 90 % of the file, alternated."""
        length = RANGE_MB * 1024 * 1024
        offsets = {"start": 0, "deep": int(media["video_bytes"] * 0.9)}
        times = {name: [] for name in offsets}
        for i in range(RANGE_SAMPLES + 5):
            for name, first in offsets.items():
                header = {"Range": f"bytes={first}-{first + length - 1}"}
                start = time.perf_counter()
                answer = session.get(url, headers=header, timeout=30)
                took = time.perf_counter() - start
                if answer.status_code != 206 or len(answer.content) != length:
                    raise NotMeasured(
                        f"GET {urlsplit(url).path} with {header['Range']} answered HTTP"
                        f" {answer.status_code} with {len(answer.content):,} bytes, not 206 with {length:,}"
                    )
                if i >= 5:  # the first few warm the worker and the page cache
                    times[name].append(took)
        return {**times, "mb": RANGE_MB, "gb": RANGE_GB}

    def zip_export(self, session, url, worker, media):
        """Stream the zip and read the worker's peak memory above where it stood before."""
        before = media_tasks.reset_peak(worker)
        received = 0
        start = time.perf_counter()
        with session.get(url, stream=True, timeout=120) as answer:
            if answer.status_code != 200:
                raise NotMeasured(f"GET {urlsplit(url).path} answered HTTP {answer.status_code}")
            for chunk in answer.iter_content(chunk_size=1024 * 1024):
                received += len(chunk)
        seconds = time.perf_counter() - start
        if received < media["zip_bytes"]:
            raise NotMeasured(f"the zip held {received:,} bytes, less than its {media['zip_files']} videos")
        return {
            "seconds": seconds,
            "bytes": received,
            "files": media["zip_files"],
            "peak_growth_mib": media_tasks.peak_growth_mib(worker, before),
        }

    def run_all(self):
        started = time.monotonic()
        self.results["started"] = datetime.now(UTC)
        self.run([PY, "manage.py", "collectstatic", "--noinput", "-v0"])
        small = self.make_database("bench_small", SMALL, 20)
        large = self.make_database("bench_large", LARGE, 3000)
        self.results["fixtures"] = {"small": small, "large": large}
        self.results["pages"] = {
            "small": self.task("bench_small", "pages"),
            "large": self.task("bench_large", "pages"),
        }
        # The budget check alone at each size, one right after the other (S-02).
        self.results["budget_sizes"] = {
            "small": self.task("bench_small", "budget", "alone")["alone"],
            "large": self.task("bench_large", "budget", "alone")["alone"],
        }
        self.load_tests(large)
        self.submissions(large)
        self.results["budget"] = self.task("bench_large", "budget")
        self.media()
        self.results["verify_spend"] = self.verify_spend("bench_large")
        self.drop_copies()
        self.results["seconds"] = time.monotonic() - started
        REPORT.write_text(render(self.results))
        log(f"wrote {REPORT.relative_to(ROOT)} in {self.results['seconds'] / 60:.1f} min")
        return self.results

    def verify_spend(self, database):
        """``manage.py verify_spend`` on everything the run wrote: whether it found no
        difference, and its verdict in its own words."""
        args = [PY, "manage.py", "verify_spend"]
        log(" ".join(str(a) for a in args) + f"  ({database})")
        done = subprocess.run(args, cwd=ROOT, env=self.db_env(database), capture_output=True, text=True)
        # It prints each difference and its verdict last: on stdout when there is none, as a
        # CommandError on stderr otherwise (after the system checks' warnings).
        lines = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines() or ["no output"]
        said = lines[-1].removeprefix("CommandError: ")
        log(f"verify_spend: {said}")
        return {"ok": done.returncode == 0, "said": said}

    def drop_copies(self):
        """Only the templates are worth keeping between runs."""
        with self.admin() as admin:
            for name in ("bench_small", "bench_large"):
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# An in-page probe: for each change of a price option, the time from its input event
# to the new price in the DOM (laid out), and to the next animation frame.
PREVIEW_PROBE = """
() => {
  window.__priceTimes = [];
  const price = document.getElementById("price-dollars");
  let pending = null;
  // A choice fires "input" and then "change"; the form redraws on the first, "input".
  document.addEventListener("input", (event) => { pending = event.timeStamp; }, true);
  new MutationObserver(() => {
    if (pending === null) return;
    const start = pending;
    pending = null;
    price.getBoundingClientRect();  // style and layout, as painting needs
    const dom = performance.now() - start;
    requestAnimationFrame(() => window.__priceTimes.push({dom, frame: performance.now() - start}));
  }).observe(price, {childList: true, characterData: true, subtree: true});
}
"""


def timed_post(session, url, expected, **kwargs):
    """Seconds for one POST that must answer ``expected``."""
    start = time.perf_counter()
    reply = session.post(url, **kwargs)
    took = time.perf_counter() - start
    if reply.status_code != expected:
        raise SystemExit(f"POST {urlsplit(url).path} answered HTTP {reply.status_code}: {reply.text[:300]}")
    return took


def field(html, name):
    match = re.search(rf'name="{name}"[^>]*value="([^"]+)"', html) or re.search(
        rf'value="([^"]+)"[^>]*name="{name}"', html
    )
    if not match:
        raise SystemExit(f"no {name} in the page")
    return match.group(1)


def to_ms(match):
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


# --- the report ---------------------------------------------------------------------------


def median(values):
    return statistics.median(values)


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def verdict(ok):
    if ok is None:
        return "not measured"
    return "**pass**" if ok else "**FAIL**"


def render(r):
    pages, load = r["pages"], {row["name"]: row for row in r["load"]}
    bare_runs = [load[f"bare view ({i})"]["rps"] for i in (1, 2, 3)]
    bare = median(bare_runs)
    spread = (max(bare_runs) - min(bare_runs)) / bare
    spread_note = f"bare-view spread over 3 runs: ±{spread / 2:.0%} (P-12)"
    webhook, status = load["webhook receiver"], load["status JSON"]
    per_request = load["status JSON, a new DB connection per request"]
    no_mw = load["bare view, no middleware"]
    ratio = {
        name: pages["large"][name]["median_ms"] / pages["small"][name]["median_ms"]
        for name in ("history", "history_team", "job", "status", "spend")
    }
    page_names = {
        "history": "History, own jobs",
        "history_team": "History, a manager's team",
        "job": "Job page",
        "status": "Status JSON (10 jobs)",
        "spend": "Spend dashboard, team, this month",
    }
    same_queries = all(
        pages["large"][n]["queries"] == pages["small"][n]["queries"]
        for n in ("history", "history_team", "history_deep", "job", "status", "spend")
    )
    rows_queries = pages["large"]["history_50_rows"]["queries"] == pages["large"]["history_1_row"]["queries"]
    deep = pages["large"]["history_deep"]["median_ms"] / pages["large"]["history"]["median_ms"]
    submit = r["submit"]
    added = median(submit["studio"]) - submit["delay"]
    added_vs_api = median(submit["studio"]) - median(submit["direct"])
    budget = r["budget"]
    lock_ratio = budget["together"]["p95_ms"] / budget["alone"]["median_ms"]
    preview = r["preview"]
    errors = sum(row["non_2xx"] + row["socket_errors"] for row in r["load"]) + sum(
        r.get("server_errors", {}).values()
    )
    fx = r["fixtures"]
    worst_page = max(ratio, key=ratio.get)

    floor = load["authenticated read floor"]["rps"]
    write_floor = load["webhook write floor"]["rps"]
    plain_floor = load["authenticated read floor, without the studio's middleware"]["rps"]
    one_status, job_page = load["status JSON, one job"]["rps"], load["job page"]["rps"]
    api_read = load["API job read, one job"]["rps"]
    form_over = median(submit["studio"]) - median(submit["direct"])
    api_over = median(submit["api"]) - median(submit["direct"])
    in_place_over = median(submit["in_place"]) - median(submit["direct"])
    sizes = r["budget_sizes"]

    targets = [
        ("P-01", "webhook receiver req/s ÷ bare-view req/s", "≥ 0.5",
         f"{webhook['rps'] / bare:.2f} ({webhook['rps']:.0f} ÷ {bare:.0f})", webhook["rps"] / bare >= 0.5),
        ("P-02", "status JSON req/s ÷ bare-view req/s", "≥ 0.5",
         f"{status['rps'] / bare:.2f} ({status['rps']:.0f} ÷ {bare:.0f})", status["rps"] / bare >= 0.5),
        ("P-03", "status JSON, persistent ÷ per-request DB connections", "report; expect ≥ 1.3×",
         f"{status['rps'] / per_request['rps']:.2f}× ({status['rps']:.0f} ÷ {per_request['rps']:.0f})",
         status["rps"] / per_request["rps"] >= 1.3),
        ("P-04", "page server time, large ÷ small (median)", "≤ 1.5",
         ", ".join(f"{page_names[n].split(',')[0].lower()} {ratio[n]:.2f}" for n in ("history", "job", "status", "spend"))
         + f"; worst {ratio[worst_page]:.2f}", max(ratio.values()) <= 1.5),
        ("P-05", "SQL queries per request, large ÷ small and 50 rows ÷ 1 row", "exactly 1.0",
         ("1.0 for every page" if same_queries else "differs (see the page table)")
         + f"; history 50 rows {pages['large']['history_50_rows']['queries']} ÷ 1 row "
         f"{pages['large']['history_1_row']['queries']}", same_queries and rows_queries),
        ("P-06", "history page at 90% depth ÷ first page (large)", "≤ 1.5", f"{deep:.2f}", deep <= 1.5),
        ("P-07", "spend dashboard, large ÷ small", "≤ 1.5", f"{ratio['spend']:.2f}", ratio["spend"] <= 1.5),
        ("P-08", "bare view, default middleware ÷ none (req/s)", "≥ 0.9",
         f"{bare / no_mw['rps']:.2f} ({bare:.0f} ÷ {no_mw['rps']:.0f})", bare / no_mw["rps"] >= 0.9),
        ("P-09", "studio submit time − sandbox's fixed delay (median)", "< 20 ms",
         f"{added * 1000:.1f} ms ({added_vs_api * 1000:.1f} ms over the sandbox's measured answer)",
         added < 0.020),
        ("P-10", "budget transaction p95, 20 submitters ÷ p50 alone", "report; expect ≤ 20×",
         f"{lock_ratio:.1f}× ({budget['together']['p95_ms']:.1f} ÷ {budget['alone']['median_ms']:.1f} ms)",
         lock_ratio <= 20),
        ("P-11", "errors in every load test (non-2xx, socket, server)", "0", f"{errors}", errors == 0),
        ("P-12", "run-to-run spread of the bare view, 3 runs", "report",
         f"±{spread / 2:.0%} ({', '.join(f'{x:.0f}' for x in bare_runs)} req/s)", True),
        ("Preview", "price option change → new price laid out, Chromium (median / p95)", "< 16 ms",
         f"{median(preview['dom']):.2f} / {p95(preview['dom']):.2f} ms", p95(preview["dom"]) < 16),
        ("F-01", "status JSON (one job) ÷ authenticated read floor (req/s)", "≥ 0.8",
         f"{one_status / floor:.2f} ({one_status:.0f} ÷ {floor:.0f})", one_status / floor >= 0.8),
        ("F-02", "job page ÷ authenticated read floor (req/s)", "≥ 0.8",
         f"{job_page / floor:.2f} ({job_page:.0f} ÷ {floor:.0f})", job_page / floor >= 0.8),
        ("F-03", "webhook receiver ÷ webhook write floor (req/s)", "≥ 0.7",
         f"{webhook['rps'] / write_floor:.2f} ({webhook['rps']:.0f} ÷ {write_floor:.0f})",
         webhook["rps"] / write_floor >= 0.7),
        ("T-01", "API submit − PixelByte's own time, ÷ the form's (median, same run)", "≤ 1.0",
         f"{api_over / form_over:.2f} ({api_over * 1000:.1f} ÷ {form_over * 1000:.1f} ms)",
         api_over <= form_over),
        ("T-02", "GET /api/v1/jobs/<id> ÷ status JSON, one job (req/s)", "≥ 0.9",
         f"{api_read / one_status:.2f} ({api_read:.0f} ÷ {one_status:.0f})", api_read / one_status >= 0.9),
        ("F-04", "authenticated floor, with ÷ without the studio's own middleware", "≥ 0.9",
         f"{floor / plain_floor:.2f} ({floor:.0f} ÷ {plain_floor:.0f})", floor / plain_floor >= 0.9),
    ]  # fmt: skip
    targets += media_targets(r.get("media", {}))
    targets += size_targets(r)
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (scripts/bench/run.py); do not edit by hand — the notes at the",
        "end come from scripts/bench/notes.md. Every verdict is a ratio of two figures measured in",
        "the same run on the same machine, so it holds on a slower or busier machine too.",
        "",
        f"- **Run:** {r['started']:%Y-%m-%d %H:%M} UTC, {r['seconds'] / 60:.1f} minutes in all.",
        f"- **Machine:** {machine()}",
        f"- **Software:** {software(r)}",
        f"- **Data:** `manage.py generate_jobs --seed {SEED}` — 60 people in 8 teams, a year of jobs in"
        f" every status; small {fx['small']['jobs']:,} jobs, large {fx['large']['jobs']:,} jobs."
        f" {data_note(r['data'])} The measured person (the busiest) has"
        f" {fx['small']['member_jobs']:,} / {fx['large']['member_jobs']:,} jobs and their team"
        f" {fx['small']['team_jobs']:,} / {fx['large']['team_jobs']:,}.",
        f"- **Serving:** `{r['gunicorn']}` with `DEBUG=false`, `CONN_MAX_AGE=60`, PostgreSQL on loopback.",
        f"- **Load:** `wrk -t {WRK_THREADS} -c {WRK_CONNECTIONS} -d {WRK_SECONDS}s --latency` from a separate"
        " process on the same machine.",
        "",
        "## Targets",
        "",
        "| ID | Metric | Target | Measured | Verdict |",
        "|---|---|---|---|---|",
    ]
    for ident, metric, target, measured, ok in targets:
        out.append(f"| {ident} | {metric} | {target} | {measured} | {verdict(ok)} |")
    out += [
        "",
        f"{spread_note}.",
        "",
        "## Page server time",
        "",
        "Django's test client in one process against PostgreSQL: from the request entering the",
        f"middleware to the response leaving it, {pages['small']['history']['n']} requests each after a"
        " warm-up.",
        "",
        "| Page | small: median / p95 | large: median / p95 | large ÷ small | queries small / large |",
        "|---|---|---|---|---|",
    ]
    extra = {
        "history_deep": "History at 90% depth (keyset)",
        "history_1_row": "History, 1 row a page",
        "history_50_rows": "History, 50 rows a page",
    }
    for name, label in {**page_names, **extra}.items():
        s, big = pages["small"][name], pages["large"][name]
        out.append(
            f"| {label} | {s['median_ms']:.1f} / {s['p95_ms']:.1f} ms | {big['median_ms']:.1f} / "
            f"{big['p95_ms']:.1f} ms | {big['median_ms'] / s['median_ms']:.2f} | {s['queries']} / "
            f"{big['queries']} |"
        )
    out += [
        "",
        "## Throughput (large data)",
        "",
        f"{spread_note}. The webhook run posts {r['webhook_deliveries']:,} distinct signed deliveries"
        ' (a "processing" then a "completed" for each job in flight) round robin; each is verified,'
        " stored and applied, and a repeat is acknowledged as a duplicate.",
        "",
        "| Run | req/s | latency p50 | latency p99 | non-2xx | socket errors |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["load"]:
        out.append(
            f"| {row['name']} | {row['rps']:.0f} | {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms | "
            f"{row['non_2xx']} | {row['socket_errors']} |"
        )
    server_errors = r.get("server_errors", {})
    out += [
        "",
        'Errors in the servers\' logs (tracebacks, "database is locked"): '
        + ", ".join(f"{name} {count}" for name, count in server_errors.items())
        + ".",
        "",
        "## Submitting, budgets and the price preview",
        "",
        f"- **Submission:** {len(submit['studio'])} jobs posted through the form to a sandbox that waits"
        f" {submit['delay'] * 1000:.0f} ms before answering (its own process). Studio: median"
        f" {median(submit['studio']) * 1000:.1f} ms, p95 {p95(submit['studio']) * 1000:.1f} ms; the sandbox"
        f" called directly: median {median(submit['direct']) * 1000:.1f} ms. The studio adds"
        f" {added * 1000:.1f} ms over the fixed delay, {added_vs_api * 1000:.1f} ms over the sandbox's"
        " own answer (budget lock and month's spend, insert, call, settle, the form page again)."
        f" The same form posted as its page's script posts it (`X-Requested-With: fetch`, answered"
        f" with the parts a post changes): median {median(submit['in_place']) * 1000:.1f} ms, p95"
        f" {p95(submit['in_place']) * 1000:.1f} ms, {in_place_over * 1000:.1f} ms over the sandbox's"
        " own answer (S-04). Each round posts to the sandbox, the form, the form as its script, and the"
        " API, one after the other.",
        f"- **Budget-check transaction** (lock the team and the person, read their months' spend rows,"
        f" insert the job), on the large data: alone median {budget['alone']['median_ms']:.1f} ms, p95"
        f" {budget['alone']['p95_ms']:.1f} ms; 20 submitters at once median"
        f" {budget['together']['median_ms']:.1f} ms, p95 {budget['together']['p95_ms']:.1f} ms. They queue"
        " on the team's row by design: that is what keeps two of them from spending the same headroom."
        f" Alone, one size right after the other before the load tests (S-02): {fx['small']['jobs']:,}"
        f" jobs median {sizes['small']['median_ms']:.1f} ms (p95 {sizes['small']['p95_ms']:.1f}),"
        f" {fx['large']['jobs']:,} jobs median {sizes['large']['median_ms']:.1f} ms (p95"
        f" {sizes['large']['p95_ms']:.1f}).",
        f"- **Price preview:** {len(preview['dom'])} clicks on quality and duration in headless Chromium."
        f" Change event → new price in the page, laid out: median {median(preview['dom']):.2f} ms, p95"
        f" {p95(preview['dom']):.2f} ms. To the next animation frame: median"
        f" {median(preview['frame']):.1f} ms, p95 {p95(preview['frame']):.1f} ms (this part waits for the"
        " display's next frame, whenever it comes, and is shown for completeness).",
        "",
    ]
    out += media_section(r.get("media", {}))
    if NOTES.exists():
        out += [NOTES.read_text().rstrip(), ""]
    return "\n".join(out)


MIB = 1024 * 1024


def rate(run):
    return run["bytes"] / run["seconds"] / MIB


def sha256_rate():
    """MB/s of SHA-256 on one core (the fastest of three passes over 64 MB): the ceiling of
    any download that hashes what it reads in the thread that reads it."""
    import hashlib

    data = os.urandom(64 * MIB)
    best = min(timed(lambda: hashlib.sha256(data).digest()) for _ in range(3))
    return 64 / best


def timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def size_targets(r):
    """S-01 to S-04 and V-01: the same work at both sizes, a submit against the API's own
    answer, and the spend rollup proved against the jobs after the run."""
    pages, fx, submit, sizes = r["pages"], r["fixtures"], r["submit"], r["budget_sizes"]
    large, small = f"{fx['large']['jobs']:,}", f"{fx['small']['jobs']:,}"

    def ratio(name):
        return pages["large"][name]["median_ms"] / pages["small"][name]["median_ms"]

    def times(name):
        return f"{pages['large'][name]['median_ms']:.1f} ÷ {pages['small'][name]['median_ms']:.1f} ms"

    budget = sizes["large"]["median_ms"] / sizes["small"]["median_ms"]
    reads = {"history": "history", "history_team": "team history", "job": "job page", "status": "status JSON"}
    worst = max(reads, key=ratio)
    differ = [
        f"{label} {pages['small'][name]['queries']} / {pages['large'][name]['queries']}"
        for name, label in reads.items()
        if pages["small"][name]["queries"] != pages["large"][name]["queries"]
    ]
    queries = "queries equal" if not differ else "queries differ (small / large): " + ", ".join(differ)
    in_place, direct = median(submit["in_place"]), median(submit["direct"])
    verified = r["verify_spend"]
    return [
        ("S-01", f"spend dashboard at {large} ÷ at {small} jobs (median server time)", "≤ 1.2",
         f"{ratio('spend'):.2f} ({times('spend')})", ratio("spend") <= 1.2),
        ("S-02", f"budget check at {large} ÷ at {small} jobs (median, alone)", "≤ 1.2",
         f"{budget:.2f} ({sizes['large']['median_ms']:.1f} ÷ {sizes['small']['median_ms']:.1f} ms)",
         budget <= 1.2),
        ("S-03", f"history, job page, status JSON at {large} ÷ {small} (median), with the same queries",
         "≤ 1.2 each; queries equal",
         ", ".join(f"{label} {ratio(name):.2f}" for name, label in reads.items())
         + f"; worst {ratio(worst):.2f}; {queries}", ratio(worst) <= 1.2 and not differ),
        ("S-04", "form submit as its page's script sends it − the sandbox's own answer (median)", "< 10 ms",
         f"{(in_place - direct) * 1000:.1f} ms ({in_place * 1000:.1f} − {direct * 1000:.1f} ms)",
         in_place - direct < 0.010),
        ("V-01", "verify_spend after the bench's data: no difference", "no difference",
         "no difference" if verified["ok"] else verified["said"].replace("|", "/"), verified["ok"]),
    ]  # fmt: skip


def data_note(data):
    """Whether each set was generated in this run (and what that took) or reused."""
    said, copies = [], []
    for name, label in (("bench_small", "small"), ("bench_large", "large")):
        made = data[name]
        if made["generated_now"]:
            steps = []
            if "write_seconds" in made:
                steps.append(f"jobs written {made['written_how']} in {duration(made['write_seconds'])}")
                steps.append(f"spend rollup rebuilt in {duration(made['rollup_seconds'])}")
            steps.append(f"VACUUM ANALYZE {duration(made['vacuum_seconds'])}")
            said.append(
                f"the {label} set was generated in this run in {duration(made['seconds'])} ({', '.join(steps)})"
            )
        else:
            said.append(
                f"the {label} set was reused (generated {made['generated']} by the same code in"
                f" {duration(made['seconds'])})"
            )
        copies.append(f"{label} {duration(made['copy_seconds'])}")
    said = "; ".join(said)
    return f"{said[0].upper()}{said[1:]}; each run works on a copy of its template ({', '.join(copies)})."


def duration(seconds):
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def media_targets(m):
    """Rows A-01 to A-04; a part that could not be measured says why instead."""
    skipped = m.get("skipped", {})
    rows = []
    if "archive" in m:
        a = m["archive"]
        # Other work on the machine only ever slows a copy down: each side's fastest run is its speed.
        plain, studio = max(rate(x) for x in a["plain"]), max(rate(x) for x in a["studio"])
        growth = max(x["peak_growth_mib"] for x in a["studio"])
        rows += [
            ("A-01", f"archiving a {a['mb']} MB output ÷ a plain streamed copy of it (MB/s, fastest run)",
             "≥ 0.8", f"{studio / plain:.2f} ({studio:.0f} ÷ {plain:.0f} MB/s)", studio / plain >= 0.8),
            ("A-02", "archiver's peak memory growth while it copies (worst run)", f"< {MEMORY_LIMIT_MIB} MB",
             f"{growth:.1f} MB", growth < MEMORY_LIMIT_MIB),
        ]  # fmt: skip
    else:
        reason = "not measured: " + skipped.get("archive", "not run")
        rows += [
            ("A-01", "archiving a 200 MB output ÷ a plain streamed copy of it", "≥ 0.8", reason, None),
            (
                "A-02",
                "archiver's peak memory growth while it copies",
                f"< {MEMORY_LIMIT_MIB} MB",
                reason,
                None,
            ),
        ]
    if "range" in m:
        g = m["range"]
        deep, start = median(g["deep"]), median(g["start"])
        rows.append(
            ("A-03", f"{g['mb']} MB range at 90 % ÷ at 0 % of a {g['gb']} GB kept video, time to last byte",
             "≤ 2", f"{deep / start:.2f} ({deep * 1000:.1f} ÷ {start * 1000:.1f} ms)", deep / start <= 2)
        )  # fmt: skip
    else:
        reason = "not measured: " + skipped.get("range", skipped.get("served", "not run"))
        rows.append(("A-03", "1 MB range at 90 % ÷ at 0 % of a 1 GB kept video", "≤ 2", reason, None))
    if "zip" in m:
        z = m["zip"]
        rows.append(
            ("A-04", f"zip of {z['files']} kept videos: gunicorn worker's peak memory growth",
             f"< {MEMORY_LIMIT_MIB} MB", f"{z['peak_growth_mib']:.1f} MB", z["peak_growth_mib"] < MEMORY_LIMIT_MIB)
        )  # fmt: skip
    else:
        reason = "not measured: " + skipped.get("zip", skipped.get("served", "not run"))
        rows.append(("A-04", "zip of 100 kept videos: worker's peak memory growth", "< 64 MB", reason, None))
    return rows


def media_section(m):
    out = ["## Keeping the videos", ""]
    if "archive" in m:
        a = m["archive"]
        out.append(
            f"- **Archiving:** a {a['mb']} MB file of random bytes served by Python's threaded"
            " `http.server` on loopback (its own process). Each run is a fresh process: a plain"
            " `requests` streamed copy (1 MB reads) into the studio's media folder, then the studio's"
            " archiver (`jobs.archive.archive_job` for one queued job: `pixelbyte.download` into a"
            " temporary file, saved through the default storage, the sidecar written, the rows"
            " recorded), with only the API's status answer stood in for. Plain copy "
            + ", ".join(f"{rate(x):.0f}" for x in a["plain"])
            + " MB/s; archiver "
            + ", ".join(f"{rate(x):.0f}" for x in a["studio"])
            + f" MB/s. Runs alternate, {len(a['plain'])} of each; the verdict compares each side's fastest"
            " run, since other work on a shared machine only ever slows a copy down (medians: plain"
            f" {median(rate(x) for x in a['plain']):.0f}, archiver {median(rate(x) for x in a['studio']):.0f}"
            f" MB/s). SHA-256 alone runs at {a['sha256']:.0f} MB/s on one core here; the archiver hashes"
            " every byte it keeps, so it can never copy faster than that. Peak memory above the start"
            " of the copy: archiver "
            + ", ".join(f"{x['peak_growth_mib']:.1f}" for x in a["studio"])
            + " MB; plain copy "
            + ", ".join(f"{x['peak_growth_mib']:.1f}" for x in a["plain"])
            + " MB."
        )
    if "range" in m:
        g = m["range"]
        out.append(
            f"- **Ranges:** {len(g['start'])} requests each for {g['mb']} MB at the start and at 90 % of a"
            f" {g['gb']} GB kept video (a sparse file in the media folder), alternated, through"
            " `/jobs/<id>/video` on gunicorn (one worker, four threads), signed in. Time to last"
            f" byte at 0 %: median {median(g['start']) * 1000:.1f} ms, p95 {p95(g['start']) * 1000:.1f} ms;"
            f" at 90 %: median {median(g['deep']) * 1000:.1f} ms, p95 {p95(g['deep']) * 1000:.1f} ms."
        )
    if "zip" in m:
        z = m["zip"]
        out.append(
            f"- **Zip export:** `/jobs/export.zip` of {z['files']} kept videos, {z['bytes'] / MIB:.0f} MB in"
            f" all, in {z['seconds']:.1f} s ({z['bytes'] / MIB / z['seconds']:.0f} MB/s) from the same"
            f" worker; its peak memory rose {z['peak_growth_mib']:.1f} MB above where it stood before the"
            " request (VmHWM, reset through /proc/<pid>/clear_refs)."
        )
    for name, reason in m.get("skipped", {}).items():
        out.append(f"- **{name.capitalize()}:** not measured: {reason}.")
    out += ["", "1 MB is 2^20 bytes in this section.", ""]
    return out


def machine():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    system = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    return f"{cpu or platform.processor()}, {os.cpu_count()} cores{memory}, {system}"


def software(r):
    import django
    import gunicorn

    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split()[1]
    return (
        f"Python {platform.python_version()}, Django {django.get_version()}, PostgreSQL {r['postgres']},"
        f" gunicorn {gunicorn.__version__}, wrk {wrk_version}, Chromium {r.get('chromium', '?')}"
    )


if __name__ == "__main__":
    bench = Bench()
    try:
        with bench.postgres():
            bench.run_all()
    finally:
        shutil.rmtree(bench.work, ignore_errors=True)
