"""Races that only a real database server can show (run by `make test-postgres`)."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs import webhooks
from jobs.management.commands.sync_jobs import Command
from jobs.models import Job, Status, Verdict, WebhookDelivery

from .helpers import make_job, make_user

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL for real concurrent transactions: run `make test-postgres`",
    ),
]


def in_threads(count, work):
    """Run ``work(i)`` in ``count`` threads that start together, each on its own connection."""
    barrier = threading.Barrier(count)

    def run(i):
        try:
            barrier.wait()
            return work(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_wh10_ten_copies_of_one_delivery_at_once_apply_exactly_once(settings):
    settings.PIXELBYTE_WEBHOOK_SECRET = "s3cret"
    job = make_job(make_user(), status=Status.PROCESSING, remote_id="job_1")
    body = json.dumps(
        {"jobId": "job_1", "status": "completed", "output": {"videoUrl": "https://cdn.example/v.mp4"}}
    ).encode()
    timestamp = str(int(time.time()))
    signature = webhooks.sign("s3cret", timestamp, body)
    url = reverse("jobs:webhook", args=[job.webhook_token])

    def deliver(_):
        return (
            Client(enforce_csrf_checks=True)
            .post(
                url,
                data=body,
                content_type="application/json",
                HTTP_X_PIXELBYTE_TIMESTAMP=timestamp,
                HTTP_X_PIXELBYTE_SIGNATURE=signature,
            )
            .status_code
        )

    statuses = in_threads(10, deliver)
    assert statuses == [200] * 10
    verdicts = list(WebhookDelivery.objects.values_list("verdict", flat=True))
    assert verdicts.count(Verdict.APPLIED) == 1
    assert verdicts.count(Verdict.DUPLICATE) == 9
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_several_sync_workers_never_claim_the_same_job():
    owner = make_user()
    past = timezone.now() - timezone.timedelta(seconds=5)
    ids = {make_job(owner, remote_id=f"job_{i}", next_check_at=past).pk for i in range(40)}
    now = timezone.now()
    claims = in_threads(4, lambda _: [pk for pk, _ in Command().claim(now, 15)])
    claimed = [pk for batch in claims for pk in batch]
    assert len(claimed) == len(set(claimed)) == 40
    assert set(claimed) == ids
    assert not Job.objects.filter(next_check_at__lte=now).exists()
