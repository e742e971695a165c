"""API tokens (/tokens/): a person makes and revokes the tokens their scripts carry.

A token is shown once, in the answer to the POST that made it: never redirected to, never put
in a URL, the session, a message or a log line (the views hide their variables from error
reports). Everyone sees their own tokens; managers their team's, staff everyone's
(``jobs.tokens.visible_to``), and only those may revoke them: anyone else gets 404.
"""

import uuid
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ObjectDoesNotExist
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods

from .. import budgets, pricing, tokens
from ..access import Viewer
from ..models import TokenScope, local_midnight

# The list shows this many tokens, newest first (each with a budget costs two small queries).
SHOWN = 200
# The forms this session has already turned into a token: a reload of the page that showed
# one (the browser sends the POST again) says so rather than making a second token.
MADE = "tokens_made"
KEEP_MADE = 10
EXPIRY_CHOICES = [
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "A year"),
    ("never", "Never"),
    ("date", "On a date"),
]
TRY_PATH = "/api/v1/me"


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=100,
        strip=True,
        help_text="What will use it, so you can tell your tokens apart: “nightly CI”, “catalog notebook”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "e.g. nightly CI"}),
        error_messages={
            "required": "Name the token: say what will use it.",
            "max_length": "A name is at most %(limit_value)d characters.",
        },
    )
    expires = forms.ChoiceField(
        label="Expires",
        choices=EXPIRY_CHOICES,
        initial="90",
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose when the token expires (or “Never”).",
            "invalid_choice": "Choose when the token expires (or “Never”).",
        },
    )
    expires_on = forms.DateField(
        label="Expiry date",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Write the date as YYYY-MM-DD."},
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=TokenScope.choices,
        initial=[scope.value for scope in tokens.ALL_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Choose at least one scope: a token that may do nothing is of no use.",
            "invalid_choice": "Choose scopes from the list.",
        },
    )
    budget = forms.DecimalField(
        label="Monthly budget of its own (US$)",
        required=False,
        min_value=0,
        max_value=tokens.MAX_BUDGET_DOLLARS,
        max_digits=13,
        decimal_places=6,
        widget=forms.NumberInput(attrs={"placeholder": "No limit of its own", "step": "0.01"}),
        error_messages={
            "invalid": "Write the budget in dollars, such as 25 or 12.50.",
            "min_value": "A budget cannot be negative.",
            "max_value": "A budget can be at most $1,000,000 a month.",
            "max_decimal_places": "A budget has at most 6 decimal places.",
            "max_digits": "A budget can be at most $1,000,000 a month.",
        },
    )

    def clean(self):
        data = super().clean()
        if data.get("expires") != "date":
            return data
        day = data.get("expires_on")
        if day is None:
            if "expires_on" not in self.errors:
                self.add_error("expires_on", "Choose the day the token expires.")
            return data
        today = timezone.localdate()
        if day <= today:
            self.add_error("expires_on", "Choose a day after today.")
        elif day > today + timedelta(days=tokens.MAX_EXPIRY_DAYS):
            self.add_error("expires_on", "Choose a day within ten years, or “Never”.")
        return data

    def expires_at(self, now=None):
        """When the token stops working: after N days, as the chosen day begins in the
        person's time zone, or never (None)."""
        choice = self.cleaned_data["expires"]
        if choice == "never":
            return None
        if choice == "date":
            return local_midnight(self.cleaned_data["expires_on"])
        return tokens.expiry_after(int(choice), now)

    def budget_micro_cents(self):
        dollars = self.cleaned_data["budget"]
        return None if dollars is None else pricing.dollars_to_micro_cents(dollars)


@require_http_methods(["GET", "POST"])
def token_list(request):
    """The person's tokens (and, for managers and staff, those they look after) and the form
    for a new one; a POST makes one and shows it once."""
    if request.method == "POST":
        return _create(request)
    return _render(request, TokenForm())


@sensitive_variables()
def _create(request):
    form = TokenForm(request.POST)
    made = _made_before(request)
    if made is not None:
        return _render(request, TokenForm(), status=409, made_before=made)
    if not form.is_valid():
        return _render(request, form, status=422)
    token, raw = tokens.create(
        request.user,
        name=form.cleaned_data["name"],
        scopes=form.cleaned_data["scopes"],
        expires_at=form.expires_at(),
        budget=form.budget_micro_cents(),
        request=request,
    )
    _remember_made(request, token)
    created = {
        "token": token,
        "raw": raw,
        "curl": f'curl -H "Authorization: Bearer {raw}" {settings.PUBLIC_BASE_URL}{TRY_PATH}',
    }
    # Shown in this answer and nowhere else: a fresh form, the token above it.
    return _render(request, TokenForm(), status=201, created=created)


def _form_key(request):
    """The form's one-time key (a UUID the page put in it), or None."""
    try:
        return str(uuid.UUID(request.POST.get("form_key", "")[:64]))
    except ValueError:
        return None


def _made_before(request):
    """The token this very form already made (a reload re-sending the POST), or None."""
    key = _form_key(request)
    pk = dict(request.session.get(MADE, [])).get(key) if key else None
    if pk is None:
        return None
    return tokens.visible_to(Viewer.for_request(request)).filter(pk=pk).first()


def _remember_made(request, token):
    key = _form_key(request)
    if key:
        request.session[MADE] = [[key, token.pk], *request.session.get(MADE, [])][:KEEP_MADE]


def _render(request, form, status=200, created=None, made_before=None):
    viewer = Viewer.for_request(request)
    shown = list(
        tokens.visible_to(viewer)
        .select_related("user__profile", "revoked_by")
        .order_by("-created_at", "-id")[: SHOWN + 1]
    )
    now = timezone.now()
    rows = [_row(token, now) for token in shown[:SHOWN]]
    context = {
        "form": form,
        "form_key": uuid.uuid4(),
        "rows": rows,
        "more": len(shown) > SHOWN,
        "show_owner": viewer.sees_owners,
        "your_budgets": budgets.budgets_of(request.user, viewer.profile),
        "created": created,
        "made_before": made_before,
    }
    response = render(request, "jobs/tokens.html", context, status=status)
    # The page may carry a token: no cache (nor the browser's back button) keeps a copy.
    add_never_cache_headers(response)
    return response


def _row(token, now):
    profile = _profile_of(token.user)
    return {
        "token": token,
        "expired": token.expires_at is not None and token.expires_at <= now,
        "budget": budgets.token_budget(token, profile, now),
    }


def _profile_of(user):
    try:
        return user.profile
    except ObjectDoesNotExist:
        return None


@require_http_methods(["GET", "POST"])
def token_revoke(request, token_id):
    """A confirmation page (GET, for browsers without JavaScript), then the revocation (POST):
    the token stops working with this request."""
    viewer = Viewer.for_request(request)
    token = get_object_or_404(tokens.visible_to(viewer).select_related("user"), pk=token_id)
    if token.revoked_at is not None:
        messages.info(request, f"“{token.name}” ({token.prefix}…) was already revoked.")
        return redirect("jobs:tokens")
    if request.method == "GET":
        return render(request, "jobs/confirm_revoke_token.html", {"token": token})
    if tokens.revoke(token, by=request.user, request=request):
        messages.success(request, f"Revoked “{token.name}” ({token.prefix}…): it no longer works.")
    else:
        messages.info(request, f"“{token.name}” ({token.prefix}…) was already revoked.")
    return redirect("jobs:tokens")
