"""The Django side of `make bench`: one step against one database, answered as JSON.

Run by scripts/bench/run.py in a child process whose environment names the
database (DATABASE_URL) and the settings every process of the run shares:

    tasks.py fixtures      people, sessions and job ids the measurements use
    tasks.py pages         server time and queries of each page, in-process
    tasks.py webhooks N    a wrk script posting N signed deliveries for jobs in flight
    tasks.py budget        the budget-check transaction alone and under 20 submitters
    tasks.py budget alone  the budget-check transaction alone
"""

import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kling_studio.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from jobs import history, lifecycle, pricing, submission, tokens, webhooks  # noqa: E402
from jobs.models import IN_FLIGHT, Job, Profile, Team  # noqa: E402

PREFIX = "gen"
MEMBER = f"{PREFIX}-001"  # the busiest person, in the first team
MANAGER = f"{PREFIX}-mgr-01"  # that team's manager
SUBMITTER = "bench-submitter"  # a member of the same team who submits during the run
WARM_UP = 5
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "60"))


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def summary_ms(seconds):
    return {
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": percentile(seconds, 0.95) * 1000,
        "n": len(seconds),
    }


def user(name):
    return get_user_model().objects.get(username=name)


def fixtures():
    """Everything the load tests need, made once per database."""
    member, manager = user(MEMBER), user(MANAGER)
    team = member.profile.team
    # The team's budget is generous but set, so every submit really sums the month's spend.
    Team.objects.filter(pk=team.pk).update(monthly_budget_micro_cents=10**15)
    submitter, _ = get_user_model().objects.get_or_create(username=SUBMITTER)
    submitter.set_password("kling-bench")
    submitter.save()
    Profile.objects.update_or_create(
        user=submitter, defaults={"team": team, "monthly_budget_micro_cents": 10**15}
    )
    mine = Job.objects.filter(owner=member)
    # API tokens: the member reads their jobs with one, the submitter submits with another.
    _, member_token = tokens.create(member, name="bench read", actor=None)
    _, submit_token = tokens.create(submitter, name="bench submit", actor=None)
    cookies = {}
    for person in (member, manager):
        client = Client()
        client.force_login(person)
        cookies[person.username] = client.cookies["sessionid"].value
    return {
        "member": MEMBER,
        "manager": MANAGER,
        "submitter": SUBMITTER,
        "submitter_password": "kling-bench",
        "sessions": cookies,
        "tokens": {"member": member_token, "submitter": submit_token},
        "status_ids": list(mine.order_by("-created_at", "-id").values_list("pk", flat=True)[:10]),
        "jobs": Job.objects.count(),
        "member_jobs": mine.count(),
        "team_jobs": Job.objects.filter(team=team).count(),
    }


def measure(client, url):
    """Median and p95 server time of GET ``url`` and the queries one request makes."""
    for _ in range(WARM_UP):
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}")
    seconds = []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        client.get(url)
        seconds.append(time.perf_counter() - start)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return {**summary_ms(seconds), "queries": len(queries), "url": url}


def pages():
    member, manager = user(MEMBER), user(MANAGER)
    as_member, as_manager = Client(), Client()
    as_member.force_login(member)
    as_manager.force_login(manager)
    mine = Job.objects.filter(owner=member).order_by("-created_at", "-id")
    count = mine.count()
    deep = mine[int(count * 0.9)]
    middle = mine[count // 2]
    ids = ",".join(str(pk) for pk in mine.values_list("pk", flat=True)[:10])
    return {
        "history": measure(as_member, "/jobs/"),
        "history_team": measure(as_manager, "/jobs/"),
        "history_deep": measure(as_member, "/jobs/?after=" + history.Cursor.of(deep).encode()),
        "history_1_row": measure(as_member, "/jobs/?per_page=1"),
        "history_50_rows": measure(as_member, "/jobs/?per_page=50"),
        "job": measure(as_member, middle.get_absolute_url()),
        "status": measure(as_member, f"/jobs/status/?parts=status,thumb,cost&ids={ids}"),
        "spend": measure(as_manager, "/spend/"),
        "member_jobs": count,
    }


def webhook_script(count):
    """A wrk script that posts ``count`` distinct, correctly signed deliveries, round robin.

    Each job in flight gets a "processing" and then a "completed" delivery, as PixelByte
    would send them; the signatures are made now, so the run must start within the
    webhook tolerance (five minutes).
    """
    secret = os.environ["PIXELBYTE_WEBHOOK_SECRET"]
    jobs = list(
        Job.objects.filter(status__in=IN_FLIGHT, remote_id__isnull=False)
        .order_by("pk")
        .values_list("remote_id", "webhook_token")[: count // 2]
    )
    if not jobs:
        raise SystemExit("no job in flight to send webhooks for")
    stamp = str(int(time.time()))
    entries = []
    for phase in ("processing", "completed"):
        for remote_id, token in jobs:
            body = {"jobId": remote_id, "requestId": f"req_{remote_id[4:]}", "status": phase}
            if phase == "completed":
                body["completedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                body["output"] = {"videoUrl": f"https://media.example.com/{remote_id}.mp4"}
            raw = json.dumps(body, separators=(",", ":"))
            signature = webhooks.sign(secret, stamp, raw.encode())
            entries.append((f"/webhooks/pixelbyte/{token}/", raw, signature))
    lines = ["local requests = {}"]
    for path, raw, signature in entries:
        headers = (
            '{["Content-Type"]="application/json",'
            f'["X-PixelByte-Timestamp"]="{stamp}",["X-PixelByte-Signature"]="{signature}"}}'
        )
        lines.append(f'requests[#requests + 1] = wrk.format("POST", "{path}", {headers}, {lua_string(raw)})')
    lines += [
        "local i = 0",
        "request = function()",
        "  i = i % #requests + 1",
        "  return requests[i]",
        "end",
    ]
    return {"script": "\n".join(lines) + "\n", "deliveries": len(entries)}


def lua_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def budget(alone_only=False):
    """The transaction that locks the budget holders, reads their months' spend (their
    ``SpendMonth`` rows) and records the job: alone, then (unless ``alone_only``) with 20
    submitters at once."""
    person = user(SUBMITTER)
    model = pricing.DEFAULT_MODEL
    params = {"prompt": "Benchmark", "quality": "std", "duration": "5", "aspect_ratio": "16:9"}

    def once():
        start = time.perf_counter()
        job = submission.record(
            user=person, model=model, params=params, submission_key=uuid.uuid4(), project="bench"
        )
        took = time.perf_counter() - start
        # Never sent: the lifecycle takes it out of the rollup, as it would a refused submit,
        # so `verify_spend` after the run finds the rollup exact.
        lifecycle.mark_not_sent(job.pk, code="BENCHMARK", message="Recorded by make bench, never sent.")
        return took

    for _ in range(WARM_UP):
        once()
    alone = [once() for _ in range(SAMPLES)]
    if alone_only:
        return {"alone": summary_ms(alone)}

    together, lock = [], threading.Lock()
    barrier = threading.Barrier(20)

    def submitter():
        try:
            barrier.wait()
            for _ in range(10):
                took = once()
                with lock:
                    together.append(took)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submitter) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"alone": summary_ms(alone), "together": summary_ms(together)}


if __name__ == "__main__":
    task = sys.argv[1]
    if task == "fixtures":
        result = fixtures()
    elif task == "pages":
        result = pages()
    elif task == "webhooks":
        result = webhook_script(int(sys.argv[2]))
    elif task == "budget":
        result = budget(alone_only=sys.argv[2:] == ["alone"])
    else:
        raise SystemExit(f"unknown task {task}")
    json.dump(result, sys.stdout)
