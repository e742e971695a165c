"""The webhook receiver: signed with the real scheme, posted through a CSRF-enforcing client."""

import base64
import inspect
import json
import socket
import time

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import webhooks
from jobs.models import Job, Status, Verdict, WebhookDelivery

from .helpers import make_job

SECRET = "whsec_studio_test_secret"
VIDEO = "https://cdn.example/outputs/job_1/output_0.mp4"


@pytest.fixture
def hook(settings, owner):
    settings.PIXELBYTE_WEBHOOK_SECRET = SECRET
    settings.PIXELBYTE_WEBHOOK_TOLERANCE = 300
    return make_job(owner, status=Status.PROCESSING, remote_id="job_1", progress=50)


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def completed(job_id="job_1", **extra):
    payload = {
        "jobId": job_id,
        "requestId": "req_1",
        "status": "completed",
        "output": {"videoUrl": VIDEO},
        "completedAt": "2026-02-18T12:00:00.000Z",
    }
    payload.update(extra)
    return json.dumps(payload).encode()


def deliver(client, job, body, *, secret=SECRET, timestamp=None, token=None, headers=None, signature=None):
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    sent = {
        "HTTP_X_PIXELBYTE_TIMESTAMP": timestamp,
        "HTTP_X_PIXELBYTE_SIGNATURE": signature
        if signature is not None
        else webhooks.sign(secret, timestamp, body),
    }
    for name, value in (headers or {}).items():
        key = "HTTP_" + name.upper().replace("-", "_")
        if value is None:
            sent.pop(key, None)
        else:
            sent[key] = value
    url = reverse("jobs:webhook", args=[token or job.webhook_token])
    return client.post(url, data=body, content_type="application/json", **sent)


def snapshot():
    return (
        list(Job.objects.order_by("pk").values()),
        list(WebhookDelivery.objects.filter(dedup_key__isnull=False).values_list("dedup_key", flat=True)),
    )


def assert_refused_without_change(response, before, status):
    assert response.status_code == status
    assert snapshot() == before


# --- WH-01, WH-09 --------------------------------------------------------------------


def test_wh01_a_valid_delivery_updates_the_job_once(csrf_client, hook):
    response = deliver(csrf_client, hook, completed())
    hook.refresh_from_db()
    assert response.status_code == 200
    assert (hook.status, hook.progress, hook.output_url) == (Status.COMPLETED, 100, VIDEO)
    assert WebhookDelivery.objects.filter(dedup_key__isnull=False).count() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.verdict, delivery.job, delivery.signature_valid) == (Verdict.APPLIED, hook, True)
    assert delivery.headers["X-PixelByte-Signature"].startswith("sha256=")
    assert SECRET not in json.dumps(delivery.headers) + delivery.body


def test_wh01_a_verified_webhook_asks_the_sync_worker_to_read_the_job_back(csrf_client, hook):
    deliver(csrf_client, hook, completed())
    hook.refresh_from_db()
    assert hook.next_check_at is not None


def test_wh09_a_replay_changes_nothing(csrf_client, hook):
    body, timestamp = completed(), str(int(time.time()))
    deliver(csrf_client, hook, body, timestamp=timestamp)
    before = snapshot()
    again = deliver(csrf_client, hook, body, timestamp=timestamp)
    assert_refused_without_change(again, before, 200)
    assert WebhookDelivery.objects.order_by("-pk").first().verdict == Verdict.DUPLICATE


def test_a_failed_delivery_fails_the_job_and_says_nothing_was_charged(csrf_client, hook, owner):
    body = json.dumps(
        {
            "jobId": "job_1",
            "status": "failed",
            "error": {"code": "INTERNAL_ERROR", "message": "Model inference failed"},
        }
    ).encode()
    deliver(csrf_client, hook, body)
    hook.refresh_from_db()
    assert (hook.status, hook.error_code, hook.charge_micro_cents) == (Status.FAILED, "INTERNAL_ERROR", 0)


def test_a_wrapped_body_is_understood(csrf_client, hook):
    body = json.dumps({"success": True, "data": {"jobId": "job_1", "status": "completed"}}).encode()
    assert deliver(csrf_client, hook, body).status_code == 200
    hook.refresh_from_db()
    assert hook.status == Status.COMPLETED


# --- WH-02 … WH-05: forged and broken signatures ----------------------------------------------


def test_wh02_a_forged_signature_is_refused_and_changes_nothing(csrf_client, hook):
    before = snapshot()
    response = deliver(csrf_client, hook, completed(), secret="someone-elses-secret")
    assert_refused_without_change(response, before, 401)
    assert WebhookDelivery.objects.get().verdict == Verdict.BAD_SIGNATURE


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b.replace(b"completed", b"completes"),
        lambda b: b + b" ",
        lambda b: json.dumps(json.loads(b), indent=2).encode(),
        lambda b: json.dumps(dict(reversed(list(json.loads(b).items())))).encode(),
    ],
    ids=["one-byte", "trailing-space", "reindented", "keys-reordered"],
)
def test_wh03_a_changed_body_under_the_original_signature_is_refused(csrf_client, hook, tamper):
    body, timestamp = completed(), str(int(time.time()))
    signature = webhooks.sign(SECRET, timestamp, body)
    before = snapshot()
    response = deliver(csrf_client, hook, tamper(body), timestamp=timestamp, signature=signature)
    assert_refused_without_change(response, before, 401)


@pytest.mark.parametrize(
    "missing",
    [
        {"X-PixelByte-Signature": None},
        {"X-PixelByte-Timestamp": None},
        {"X-PixelByte-Signature": None, "X-PixelByte-Timestamp": None},
        {"X-PixelByte-Signature": ""},
        {"X-PixelByte-Timestamp": ""},
    ],
    ids=["no-signature", "no-timestamp", "neither", "empty-signature", "empty-timestamp"],
)
def test_wh04_missing_or_empty_headers_are_refused(csrf_client, hook, missing):
    before = snapshot()
    response = deliver(csrf_client, hook, completed(), headers=missing)
    assert 400 <= response.status_code < 500
    assert snapshot() == before


@pytest.mark.parametrize(
    "signature",
    [
        "sha256=zzzz",
        "sha256=",
        "garbage",
        "v0=" + "a" * 64,
        "v1,abc==",
        "sha1=" + "a" * 40,
        "sha256=" + "é" * 64,
    ],
)
def test_wh05_garbled_or_unknown_scheme_signatures_are_refused(csrf_client, hook, signature):
    before = snapshot()
    response = deliver(csrf_client, hook, completed(), signature=signature)
    assert_refused_without_change(response, before, 401)


# --- WH-06: the clock ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "ok"), [(-299, True), (-300, True), (-301, False), (301, False), (299, True)]
)
def test_wh06_the_timestamp_tolerance_is_exact(offset, ok):
    body, now = b"{}", 1_800_000_000
    timestamp = str(now + offset)
    call = lambda: webhooks.verify(  # noqa: E731
        SECRET, timestamp, webhooks.sign(SECRET, timestamp, body), body, now=now, tolerance=300
    )
    if ok:
        call()
    else:
        with pytest.raises(webhooks.Refused):
            call()


@pytest.mark.parametrize(("offset", "status"), [(-290, 200), (-310, 401), (310, 401)])
def test_wh06_old_and_future_deliveries_are_refused_over_http(csrf_client, hook, offset, status):
    response = deliver(csrf_client, hook, completed(), timestamp=str(int(time.time()) + offset))
    assert response.status_code == status


@pytest.mark.parametrize("timestamp", ["soon", "12.5", "-5", "١٢٣", "9" * 40, " 123"])
def test_wh06_a_non_numeric_timestamp_is_a_4xx_never_a_500(csrf_client, hook, timestamp):
    before = snapshot()
    response = deliver(csrf_client, hook, completed(), timestamp=timestamp)
    assert_refused_without_change(response, before, 401)


# --- WH-07: rotation ----------------------------------------------------------------------------------


def test_wh07_one_valid_signature_among_two_is_accepted(csrf_client, hook):
    body, timestamp = completed(), str(int(time.time()))
    both = f"{webhooks.sign('old-secret', timestamp, body)}, {webhooks.sign(SECRET, timestamp, body)}"
    assert deliver(csrf_client, hook, body, timestamp=timestamp, signature=both).status_code == 200


def test_wh07_two_invalid_signatures_are_refused(csrf_client, hook):
    body, timestamp = completed(), str(int(time.time()))
    both = f"{webhooks.sign('a', timestamp, body)} {webhooks.sign('b', timestamp, body)}"
    assert deliver(csrf_client, hook, body, timestamp=timestamp, signature=both).status_code == 401


# --- WH-11: order ----------------------------------------------------------------------------------------


def test_wh11_processing_after_completed_leaves_it_completed(csrf_client, hook):
    deliver(csrf_client, hook, completed())
    before = snapshot()[0]
    response = deliver(csrf_client, hook, json.dumps({"jobId": "job_1", "status": "processing"}).encode())
    assert response.status_code == 200
    assert snapshot()[0] == before
    assert WebhookDelivery.objects.order_by("-pk").first().verdict == Verdict.STALE


# --- WH-12: unknown ids and tokens -----------------------------------------------------------------------------


def test_wh12_an_unknown_job_id_is_acknowledged_and_nothing_is_created(csrf_client, hook):
    before = snapshot()
    response = deliver(csrf_client, hook, completed(job_id="job_somebody_else"))
    assert_refused_without_change(response, before, 200)
    assert WebhookDelivery.objects.get().verdict == Verdict.UNKNOWN_JOB


def test_wh12_a_wrong_token_is_404_and_changes_nothing(csrf_client, hook, owner):
    other = make_job(owner, status=Status.PROCESSING, remote_id="job_2")
    before = snapshot()
    response = deliver(csrf_client, hook, completed(), token="not-a-real-token")
    assert_refused_without_change(response, before, 404)
    # A token only ever touches its own job: job_1's news sent to job_2's URL is ignored.
    response = deliver(csrf_client, hook, completed(), token=other.webhook_token)
    assert response.status_code == 200
    other.refresh_from_db()
    assert other.status == Status.PROCESSING


def test_without_a_secret_the_token_alone_is_checked(csrf_client, hook, settings):
    settings.PIXELBYTE_WEBHOOK_SECRET = ""
    assert deliver(csrf_client, hook, completed(), token="wrong").status_code == 404
    assert deliver(csrf_client, hook, completed(), signature="").status_code == 200
    hook.refresh_from_db()
    assert hook.status == Status.COMPLETED
    assert WebhookDelivery.objects.order_by("-pk").first().signature_valid is None


# --- WH-13: size and JSON ----------------------------------------------------------------------------------------


def test_wh13_a_body_over_the_limit_is_413(csrf_client, hook):
    before = snapshot()
    body = b'{"jobId": "job_1", "status": "completed", "pad": "' + b"x" * webhooks.MAX_BODY + b'"}'
    response = deliver(csrf_client, hook, body)
    assert_refused_without_change(response, before, 413)
    assert len(WebhookDelivery.objects.get().body) <= 2048


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_wh13_malformed_json_with_a_valid_signature_is_400(csrf_client, hook, body):
    before = snapshot()
    assert_refused_without_change(deliver(csrf_client, hook, body), before, 400)


# --- WH-14, WH-15: the HMAC helper ------------------------------------------------------------------------------------


def test_wh14_the_hmac_helper_matches_githubs_published_vector():
    digest = webhooks.hmac_sha256(b"It's a Secret to Everybody", b"Hello, World!").hex()
    assert digest == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_wh14_the_hmac_helper_matches_the_standard_webhooks_vector():
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    content = b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
    digest = base64.b64encode(webhooks.hmac_sha256(key, content)).decode()
    assert digest == "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_wh14_our_signature_is_sha256_hex_of_timestamp_dot_body():
    expected = webhooks.hmac_sha256(b"k", b"1700000000.{}").hex()
    assert webhooks.sign("k", "1700000000", b"{}") == "sha256=" + expected


def test_wh15_signatures_are_compared_in_constant_time():
    source = inspect.getsource(webhooks.verify)
    assert "hmac.compare_digest" in source
    assert "== expected" not in source and "expected ==" not in source


# --- WH-16: no outbound call ----------------------------------------------------------------------------------------------


def test_wh16_the_receiver_makes_no_outbound_network_call(csrf_client, hook, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the webhook receiver tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert deliver(csrf_client, hook, completed()).status_code == 200


# --- WH-17: anything at all -----------------------------------------------------------------------------------------------


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda d: json.dumps(d).encode(), st.dictionaries(st.text(max_size=10), st.text(max_size=10))
        ),
    ),
    timestamp=st.one_of(header_text, st.integers(min_value=0, max_value=2**40).map(str)),
    signature=st.one_of(
        header_text, st.text(alphabet="0123456789abcdef", max_size=64).map(lambda s: "sha256=" + s)
    ),
    token=st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=40),
    use_real_token=st.booleans(),
)
def test_wh17_arbitrary_deliveries_never_500_and_never_change_a_job(
    hook, body, timestamp, signature, token, use_real_token
):
    before = list(Job.objects.order_by("pk").values())
    client = Client(enforce_csrf_checks=True)
    response = deliver(
        client,
        hook,
        body,
        timestamp=timestamp,
        signature=signature,
        token=hook.webhook_token if use_real_token else token,
    )
    assert response.status_code < 500
    assert list(Job.objects.order_by("pk").values()) == before


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
        ),
        max_leaves=20,
    ),
    extra=st.dictionaries(
        st.sampled_from(
            ["jobId", "status", "output", "outputs", "error", "completedAt", "progress", "data", "success"]
        ),
        st.none() | st.integers() | st.text(max_size=30) | st.lists(st.text(max_size=5), max_size=3),
        max_size=6,
    ),
)
def test_wh17_signed_bodies_of_any_shape_never_500(hook, payload, extra):
    """Past the signature check, the parser must survive whatever a signed body holds."""
    body = json.dumps(extra if isinstance(payload, dict | type(None)) and extra else payload).encode()
    response = deliver(Client(enforce_csrf_checks=True), hook, body)
    assert response.status_code < 500


# --- WH-18: CSRF ---------------------------------------------------------------------------------------------------------------


def post_views():
    """Every URL of the studio and of Django's auth, with sample arguments."""
    from django.urls import get_resolver

    found = []
    for namespace in ("jobs", None):
        resolver = get_resolver()
        names = (
            resolver.reverse_dict if namespace is None else resolver.namespace_dict[namespace][1].reverse_dict
        )
        for name in names:
            if isinstance(name, str):
                found.append(f"{namespace}:{name}" if namespace else name)
    return found


def test_wh18_the_webhook_needs_no_csrf_token_but_every_other_post_does(csrf_client, hook, owner):
    assert deliver(csrf_client, hook, completed()).status_code == 200
    csrf_client.force_login(owner)
    checked = []
    for name in post_views():
        if name == "jobs:webhook":
            continue
        for args in ([], [hook.pk], [hook.webhook_token]):
            try:
                url = reverse(name, args=args)
            except Exception:
                continue
            response = csrf_client.post(url, {})
            if response.status_code != 405:  # views that take no POST at all are safe
                assert response.status_code == 403, url
                checked.append(url)
            break
    for url in (
        reverse("jobs:new"),
        reverse("jobs:cancel", args=[hook.pk]),
        reverse("logout"),
        reverse("login"),
    ):
        assert url in checked
    hook.refresh_from_db()
    assert hook.status == Status.COMPLETED


def test_the_webhook_only_takes_post(client, hook):
    url = reverse("jobs:webhook", args=[hook.webhook_token])
    assert client.get(url).status_code == 405


# --- staff can see and re-apply --------------------------------------------------------------------------------------------------


def test_staff_see_deliveries_in_the_admin_without_the_secret(csrf_client, hook, client, db):
    from .helpers import make_user

    deliver(csrf_client, hook, completed())
    deliver(csrf_client, hook, completed(), secret="forged")
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    page = client.get(reverse("admin:jobs_webhookdelivery_changelist")).content.decode()
    assert "Applied" in page and "Refused: signature" in page
    detail = client.get(
        reverse("admin:jobs_webhookdelivery_change", args=[WebhookDelivery.objects.first().pk])
    ).content.decode()
    assert SECRET not in page + detail


def test_staff_can_reapply_a_verified_delivery(csrf_client, hook, client):
    from .helpers import make_user

    deliver(csrf_client, hook, completed())
    Job.objects.filter(pk=hook.pk).update(status=Status.PROCESSING, output_url="")
    admin = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    delivery = WebhookDelivery.objects.get()
    response = client.post(
        reverse("admin:jobs_webhookdelivery_changelist"),
        {"action": "reapply", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert "applied" in response.content.decode()
    hook.refresh_from_db()
    assert (hook.status, hook.output_url) == (Status.COMPLETED, VIDEO)


def test_a_refused_delivery_cannot_be_reapplied(csrf_client, hook):
    deliver(csrf_client, hook, completed(), secret="forged")
    with pytest.raises(ValueError):
        webhooks.reapply(WebhookDelivery.objects.get())


def test_nul_characters_and_non_web_urls_never_reach_the_database_or_a_page(csrf_client, hook):
    body = (
        json.dumps(
            {
                "jobId": "job_1",
                "status": "completed",
                "output": {"videoUrl": "javascript:alert(1)"},
                "outputs": [{"url": "javascript:alert(2)", "type": "video\u0000"}],
                "error": {"code": "X\u0000", "message": "a\u0000b"},
            }
        ).encode()
        + b"\x00"
    )
    response = deliver(csrf_client, hook, body[:-1])
    assert response.status_code == 200
    hook.refresh_from_db()
    assert hook.output_url == "" and hook.outputs == [{"url": "javascript:alert(2)", "type": "video"}]
    raw = deliver(csrf_client, hook, b'{"jobId": "job_1"}\x00')
    assert raw.status_code == 400
    assert "\x00" not in WebhookDelivery.objects.order_by("-pk").first().body
