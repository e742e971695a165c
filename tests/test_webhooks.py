"""The webhook receiver: signed with the real scheme, posted through a CSRF-enforcing client."""

import base64
import json
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs import webhooks
from jobs.models import Job, Status, Verdict, WebhookDelivery, WebhookTally

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
    assert (hook.status, hook.error_code, hook.billed_micro_cents) == (Status.FAILED, "INTERNAL_ERROR", 0)


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


def other_hex_digit(digit):
    return "0" if digit != "0" else "1"


@pytest.fixture
def comparisons(monkeypatch):
    """Every ``hmac.compare_digest`` call the receiver makes, as (a, b, result)."""
    seen = []
    real = webhooks.hmac.compare_digest

    def recording(a, b):
        result = real(a, b)
        seen.append((a, b, result))
        return result

    monkeypatch.setattr(webhooks.hmac, "compare_digest", recording)
    return seen


@pytest.mark.parametrize(
    "forge",
    [
        lambda digest: digest[:-1] + other_hex_digit(digest[-1]),
        lambda digest: other_hex_digit(digest[0]) + digest[1:],
        lambda digest: "0" * len(digest),
        lambda digest: digest[::-1],
    ],
    ids=["last-digit-changed", "first-digit-changed", "all-zeros", "reversed"],
)
def test_wh15_a_signature_of_the_right_length_but_wrong_is_refused(csrf_client, hook, comparisons, forge):
    body, timestamp = completed(), str(int(time.time()))
    digest = webhooks.sign(SECRET, timestamp, body).removeprefix("sha256=")
    forged = forge(digest)
    assert len(forged) == len(digest) and forged != digest
    before = snapshot()
    response = deliver(csrf_client, hook, body, timestamp=timestamp, signature="sha256=" + forged)
    assert_refused_without_change(response, before, 401)
    assert comparisons and not any(result for _, _, result in comparisons)


def test_wh15_signatures_are_compared_in_constant_time_as_equal_length_bytes(csrf_client, hook, comparisons):
    body, timestamp = completed(), str(int(time.time()))
    rotating = f"{webhooks.sign(SECRET, timestamp, body)}, {webhooks.sign('old-secret', timestamp, body)}"
    assert deliver(csrf_client, hook, body, timestamp=timestamp, signature=rotating).status_code == 200
    hook.refresh_from_db()
    assert hook.status == Status.COMPLETED
    # Both candidates are compared, even after the first matched: the time says nothing of which did.
    assert [result for _, _, result in comparisons] == [True, False]
    # compare_digest takes the same time whatever the bytes when both sides are bytes of one length.
    for a, b, _ in comparisons:
        assert type(a) is bytes and type(b) is bytes and len(a) == len(b)


# --- WH-16: no outbound call ----------------------------------------------------------------------------------------------


def test_wh16_the_receiver_makes_no_outbound_network_call(csrf_client, hook, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the webhook receiver tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert deliver(csrf_client, hook, completed()).status_code == 200


# --- WH-17: anything at all -----------------------------------------------------------------------------------------------


header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
# JSON strings, some holding a lone surrogate (json.dumps writes it as a "\ud800" escape).
json_text = st.text(max_size=10) | st.builds(
    lambda before, lone, after: before + lone + after,
    st.text(max_size=4),
    st.characters(categories=["Cs"]),
    st.text(max_size=4),
)
# Anything a URL path segment can carry: NUL, controls, percent signs, any script.
url_token = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=40),
    st.text(
        alphabet=st.characters(exclude_characters="/", exclude_categories=["Cs"]), min_size=1, max_size=70
    ),
    st.sampled_from(["\x00", "%00", "tok\x00en", "x" * 65]),
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(json_text, json_text)),
    ),
    timestamp=st.one_of(header_text, st.integers(min_value=0, max_value=2**40).map(str)),
    signature=st.one_of(
        header_text, st.text(alphabet="0123456789abcdef", max_size=64).map(lambda s: "sha256=" + s)
    ),
    token=url_token,
    use_real_token=st.booleans(),
    signed=st.booleans(),
)
def test_wh17_arbitrary_deliveries_never_500_and_never_change_a_job(
    hook, body, timestamp, signature, token, use_real_token, signed
):
    before = list(Job.objects.order_by("pk").values())
    client = Client(enforce_csrf_checks=True)
    if signed:  # past the signature check, so the token and the body are what is tested
        timestamp = str(int(time.time()))
        signature = webhooks.sign(SECRET, timestamp, body)
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
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | json_text,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=5),
        max_leaves=20,
    ),
    extra=st.dictionaries(
        st.sampled_from(
            ["jobId", "status", "output", "outputs", "error", "completedAt", "progress", "data", "success"]
        ),
        st.none() | st.integers() | json_text | st.lists(json_text, max_size=3),
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


@pytest.mark.rollup_left_behind  # a delivery's effect undone by hand, to apply it again
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


# --- 8: refused traffic is counted, not stored -----------------------------------------------------------------------

FLOOD = 500


def tallies():
    """Refused requests counted per verdict, all minutes together."""
    return dict(WebhookTally.objects.order_by().values_list("verdict").annotate(total=Sum("count")))


def stored_body_bytes():
    return sum(len(body) for body in WebhookDelivery.objects.values_list("body", flat=True))


@pytest.mark.parametrize(
    ("secret", "verdict", "status"),
    [(SECRET, Verdict.BAD_SIGNATURE, 401), ("", Verdict.BAD_TOKEN, 404)],
    ids=["with-a-secret", "without-a-secret"],
)
def test_item08_a_flood_to_random_tokens_is_counted_and_only_sampled(
    csrf_client, hook, settings, secret, verdict, status
):
    settings.PIXELBYTE_WEBHOOK_SECRET = secret
    before = snapshot()
    for _ in range(FLOOD):
        response = deliver(csrf_client, hook, completed(), token=secrets.token_urlsafe(24), secret="guess")
        assert response.status_code == status
    assert snapshot() == before
    assert WebhookDelivery.objects.count() <= webhooks.REFUSED_SAMPLE_PER_HOUR < FLOOD
    assert stored_body_bytes() <= webhooks.REFUSED_SAMPLE_PER_HOUR * webhooks.REFUSED_BODY_KEPT
    assert tallies() == {verdict: FLOOD}


def test_item08_a_bad_signature_flood_on_a_real_token_is_counted_and_only_sampled(csrf_client, hook):
    before = snapshot()
    for i in range(FLOOD):
        body = completed(pad="x" * 2000 + str(i))
        assert deliver(csrf_client, hook, body, secret="guess").status_code == 401
    assert snapshot() == before
    assert WebhookDelivery.objects.count() == webhooks.REFUSED_SAMPLE_PER_HOUR
    assert stored_body_bytes() <= webhooks.REFUSED_SAMPLE_PER_HOUR * webhooks.REFUSED_BODY_KEPT
    assert tallies() == {Verdict.BAD_SIGNATURE: FLOOD}
    # The flood does not crowd out the real thing: a genuine delivery is still kept in full.
    assert deliver(csrf_client, hook, completed()).status_code == 200
    applied = WebhookDelivery.objects.get(verdict=Verdict.APPLIED)
    assert (applied.job, applied.body) == (hook, completed().decode())


def test_item08_the_sample_starts_again_once_the_last_hour_has_room(csrf_client, hook):
    an_hour_ago = timezone.now() - timedelta(minutes=61)
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(verdict=Verdict.BAD_SIGNATURE, http_status=401, received_at=an_hour_ago)
        for _ in range(webhooks.REFUSED_SAMPLE_PER_HOUR)
    )
    deliver(csrf_client, hook, completed(), secret="guess")
    assert WebhookDelivery.objects.filter(received_at__gt=an_hour_ago).count() == 1


def test_item08_oversized_bodies_are_counted_and_only_sampled(csrf_client, hook):
    body = b'{"pad": "' + b"x" * webhooks.MAX_BODY + b'"}'
    for _ in range(webhooks.REFUSED_SAMPLE_PER_HOUR + 20):
        assert deliver(csrf_client, hook, body).status_code == 413
    assert WebhookDelivery.objects.count() == webhooks.REFUSED_SAMPLE_PER_HOUR
    assert tallies() == {Verdict.TOO_LARGE: webhooks.REFUSED_SAMPLE_PER_HOUR + 20}


def test_item08_counts_are_per_minute_and_per_verdict(db):
    noon = datetime(2026, 3, 1, 12, 0, 7, 500, tzinfo=UTC)
    for moment, verdict in [
        (noon, Verdict.BAD_TOKEN),
        (noon + timedelta(seconds=40), Verdict.BAD_TOKEN),
        (noon + timedelta(seconds=40), Verdict.BAD_SIGNATURE),
        (noon + timedelta(minutes=1), Verdict.BAD_TOKEN),
    ]:
        webhooks.tally(verdict, moment)
    rows = WebhookTally.objects.order_by("minute", "verdict").values_list("minute", "verdict", "count")
    assert list(rows) == [
        (noon.replace(second=0, microsecond=0), Verdict.BAD_SIGNATURE, 1),
        (noon.replace(second=0, microsecond=0), Verdict.BAD_TOKEN, 2),
        (noon.replace(second=0, microsecond=0) + timedelta(minutes=1), Verdict.BAD_TOKEN, 1),
    ]


@pytest.mark.django_db(transaction=True)
def test_item08_concurrent_counts_are_never_lost():
    moment, workers, each = timezone.now(), 6, 15
    barrier = threading.Barrier(workers)

    def count(_):
        try:
            barrier.wait()
            for _ in range(each):
                webhooks.tally(Verdict.BAD_TOKEN, moment)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(count, range(workers)))
    assert list(WebhookTally.objects.values_list("count", flat=True)) == [workers * each]


def test_item08_staff_see_the_counts_read_only_in_the_admin(csrf_client, hook, client):
    from .helpers import make_user

    for _ in range(3):
        deliver(csrf_client, hook, completed(), token=secrets.token_urlsafe(24), secret="guess")
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:jobs_webhooktally_changelist")).content.decode()
    assert "Refused: signature" in page and SECRET not in page
    tally_row = WebhookTally.objects.get()
    assert client.get(reverse("admin:jobs_webhooktally_add")).status_code == 403
    change = client.post(reverse("admin:jobs_webhooktally_change", args=[tally_row.pk]), {"count": "0"})
    assert change.status_code == 403
    tally_row.refresh_from_db()
    assert tally_row.count == 3


# --- 11: odd bytes are a 4xx, never a 500 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["\x00", "tok\x00en", "%00", "é" * 10, "a b", "x" * 65, "\U0001f600", "..", "a;b=c", "a\nb"],
)
@pytest.mark.parametrize("secret", [SECRET, ""], ids=["signed", "no-secret"])
def test_item11_an_odd_url_token_is_a_404_without_a_query(csrf_client, hook, settings, token, secret):
    settings.PIXELBYTE_WEBHOOK_SECRET = secret
    before = snapshot()
    with CaptureQueriesContext(connection) as queries:
        response = deliver(csrf_client, hook, completed(), token=token)
    assert_refused_without_change(response, before, 404)
    assert not [q["sql"] for q in queries if "webhook_token" in q["sql"]]
    assert tallies() == {Verdict.BAD_TOKEN: 1}


@pytest.mark.parametrize(
    "body",
    [
        '{"jobId": "\\ud800", "status": "completed"}',
        '{"jobId": "job_1", "status": "completed\\udfff"}',
        '{"jobId": "job_1", "status": "failed", "error": {"code": "X", "message": "\\ud800"}}',
        '{"jobId": "job_1", "status": "completed", "outputs": [{"url": "https://cdn.example/\\ud83d.mp4"}]}',
        '{"data": {"jobId": "job_1", "status": "completed", "\\udc00": 1}}',
    ],
    ids=["job-id", "status", "error-message", "output-url", "key"],
)
def test_item11_a_lone_surrogate_in_a_signed_body_is_a_400(csrf_client, hook, body):
    before = snapshot()
    response = deliver(csrf_client, hook, body.encode())
    assert_refused_without_change(response, before, 400)
    assert WebhookDelivery.objects.get().verdict == Verdict.MALFORMED


def test_item11_a_deeply_nested_signed_body_is_a_400(csrf_client, hook):
    before = snapshot()
    response = deliver(csrf_client, hook, b"[" * (webhooks.MAX_BODY - 10))
    assert_refused_without_change(response, before, 400)


# --- 12: the signed body must name the job of the URL -------------------------------------------------------------------

FAILED_WITHOUT_JOB_ID = json.dumps({"status": "failed", "error": {"code": "X", "message": "no"}}).encode()


def test_item12_a_signed_body_without_a_job_id_is_refused_and_changes_nothing(csrf_client, hook, owner):
    other = make_job(owner, status=Status.PROCESSING, remote_id="job_2", progress=50)
    before = snapshot()
    response = deliver(csrf_client, hook, FAILED_WITHOUT_JOB_ID, token=other.webhook_token)
    assert_refused_without_change(response, before, 400)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.verdict, delivery.job) == (Verdict.JOB_MISMATCH, other)
    assert response.json()["result"] == "Refused: does not name this job"


def test_item12_a_job_without_a_remote_id_needs_a_job_id(csrf_client, hook, owner):
    waiting = make_job(owner, status=Status.SUBMITTING)
    before = snapshot()
    response = deliver(csrf_client, hook, FAILED_WITHOUT_JOB_ID, token=waiting.webhook_token)
    assert_refused_without_change(response, before, 400)


def test_item12_a_job_without_a_remote_id_never_adopts_one_another_job_has(csrf_client, hook, owner):
    waiting = make_job(owner, status=Status.SUBMITTING)
    before = snapshot()
    response = deliver(csrf_client, hook, completed(job_id="job_1"), token=waiting.webhook_token)
    assert_refused_without_change(response, before, 200)
    assert WebhookDelivery.objects.get().verdict == Verdict.UNKNOWN_JOB


def test_item12_a_job_without_a_remote_id_adopts_an_unclaimed_one(csrf_client, hook, owner):
    waiting = make_job(owner, status=Status.SUBMITTING)
    response = deliver(csrf_client, hook, completed(job_id="job_9"), token=waiting.webhook_token)
    assert response.status_code == 200
    waiting.refresh_from_db()
    assert (waiting.remote_id, waiting.status) == ("job_9", Status.COMPLETED)


def test_item12_a_delivery_about_another_job_cannot_be_reapplied(csrf_client, hook):
    deliver(csrf_client, hook, completed(job_id="job_somebody_else"))
    delivery = WebhookDelivery.objects.get()
    assert not delivery.trusted
    with pytest.raises(ValueError):
        webhooks.reapply(delivery)
    hook.refresh_from_db()
    assert hook.status == Status.PROCESSING
