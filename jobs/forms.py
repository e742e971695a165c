"""The prompt form, built from the model catalog in ``pricing``."""

import secrets
import uuid
from decimal import Decimal

from django import forms

from . import history, pricing, stacks
from .spend import MAX_CUSTOM_DAYS, PERIODS

CHOICE_ERROR = "Choose one of: %(allowed)s."


class PricedRadioSelect(forms.RadioSelect):
    """Radio buttons that also say what each choice does to the price (``price_tag``: "×1.5"),
    read in the template as ``radio.data.price_tag``."""

    def __init__(self, attrs=None, choices=(), tags=None):
        super().__init__(attrs, choices)
        self.tags = tags or {}

    def create_option(self, name, value, *args, **kwargs):
        option = super().create_option(name, value, *args, **kwargs)
        option["price_tag"] = self.tags.get(str(value), "")
        return option


def times(factor):
    """A price factor as a person reads it: ``Fraction(3, 2)`` → "×1.5"."""
    if factor.denominator == 1:
        return f"×{factor.numerator}"
    exact = Decimal(factor.numerator) / Decimal(factor.denominator)
    return "×" + format(exact.quantize(Decimal("0.01")).normalize(), "f")


def price_tags(spec):
    """What each choice of ``spec`` does to the price, next to its default choice ("Pro" →
    "×1.5"); nothing for the default, nor for a choice that does not change the price."""
    base = spec.choice(spec.default).factor if spec.default else 1
    return {c.value: times(c.factor / base) for c in spec.choices if c.factor != base}


class TextField(forms.CharField):
    """Line breaks count as one character, as the browser's counter counts them: a
    browser submits CRLF, which is turned into LF before the length is checked."""

    def to_python(self, value):
        if isinstance(value, str):
            value = value.replace("\r\n", "\n").replace("\r", "\n")
        return super().to_python(value)


def _text_field(spec):
    return TextField(
        label=spec.label,
        max_length=spec.max_length,
        required=spec.required,
        help_text=spec.help_text,
        widget=forms.Textarea(attrs={"rows": 6, "maxlength": spec.max_length}),
        error_messages={
            "required": "Write a prompt: describe the video you want.",
            "max_length": (
                "The prompt is %(show_value)d characters long; "
                "the limit is %(limit_value)d. Shorten it and try again."
            ),
        },
    )


def _choice_field(spec):
    allowed = ", ".join(c.value for c in spec.choices)
    return forms.ChoiceField(
        label=spec.label,
        choices=[(c.value, c.label) for c in spec.choices],
        initial=spec.default,
        required=spec.required,
        widget=PricedRadioSelect(tags=price_tags(spec)),
        error_messages={
            "required": f"Choose the {spec.label.lower()}.",
            "invalid_choice": (
                f"“%(value)s” is not an allowed {spec.label.lower()}. " + CHOICE_ERROR % {"allowed": allowed}
            ),
        },
    )


def _integer_field(spec):
    return forms.IntegerField(
        label=spec.label,
        required=spec.required,
        min_value=spec.min_value,
        max_value=spec.max_value,
        help_text=spec.help_text,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "placeholder": "Random"}),
        error_messages={
            "invalid": f"The {spec.label.lower()} must be a whole number.",
            "min_value": f"The {spec.label.lower()} must be at least %(limit_value)s.",
            "max_value": f"The {spec.label.lower()} must be at most %(limit_value)s.",
        },
    )


def _count_field():
    numbers = [str(n) for n in range(1, stacks.MAX_COUNT + 1)]
    return forms.TypedChoiceField(
        label="Videos",
        choices=[(n, f"{n} video{'s' if n != '1' else ''}") for n in numbers],
        coerce=int,
        empty_value=1,  # a post without it (an older page, the API's form) makes one
        required=False,
        initial="1",
        help_text="The same prompt and options, each video with its own seed: the seed below, then the next ones (or random ones).",
        widget=PricedRadioSelect(tags={n: f"×{n}" for n in numbers[1:]}),
        error_messages={
            "invalid_choice": (
                "“%(value)s” is not an allowed number of videos. "
                + CHOICE_ERROR % {"allowed": ", ".join(numbers)}
            ),
        },
    )


FIELD_BUILDERS = {"text": _text_field, "choice": _choice_field, "integer": _integer_field}


def field_for(spec):
    if spec.kind not in FIELD_BUILDERS:
        raise ValueError(f"unknown input kind {spec.kind!r}")
    return FIELD_BUILDERS[spec.kind](spec)


class JobForm(forms.Form):
    """One field per model input, named as the API names it, plus the submission key."""

    project = forms.CharField(
        label="Project",
        required=False,
        max_length=100,
        strip=True,
        help_text="Optional: a client or campaign to charge this video to.",
        widget=forms.TextInput(
            attrs={"list": "project-labels", "autocomplete": "off", "placeholder": "None"}
        ),
        error_messages={"max_length": "A project label is at most %(limit_value)d characters."},
    )
    submission_key = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": "This form has expired. Check the settings and submit again.",
            "invalid": "This form has expired. Check the settings and submit again.",
        },
    )

    def __init__(self, *args, model=pricing.DEFAULT_MODEL, **kwargs):
        super().__init__(*args, **kwargs)
        self.model = model
        for spec in model.inputs:
            self.fields[spec.name] = field_for(spec)
        self.fields["count"] = _count_field()
        # How many videos goes with the options that set the price, before the seed.
        chosen = [spec.name for spec in model.inputs if spec.kind != "integer"]
        typed = [spec.name for spec in model.inputs if spec.kind == "integer"]
        self.order_fields(chosen + ["count"] + typed + ["project"])
        if not self.is_bound:
            self.initial.setdefault("submission_key", uuid.uuid4())
            for name, value in model.defaults().items():
                self.initial.setdefault(name, value)
            if not self.initial.get("count"):
                self.initial["count"] = "1"

    @classmethod
    def again(cls, job, *, vary_seed=False):
        """A fresh form with ``job``'s settings (and a new random seed when asked)."""
        model = pricing.MODELS.get(job.model_slug, pricing.DEFAULT_MODEL)
        initial = {**job.params, "project": job.project}
        if vary_seed:
            initial["seed"] = secrets.randbelow(model.input("seed").max_value + 1)
        return cls(initial=initial, model=model)

    def clean_prompt(self):
        prompt = self.cleaned_data["prompt"]
        if not prompt.strip():
            raise forms.ValidationError("Write a prompt: describe the video you want.")
        return prompt

    def params(self):
        """The ``input`` object for the API: choices as strings, the seed only when set."""
        params = {}
        for spec in self.model.inputs:
            value = self.cleaned_data.get(spec.name)
            if value is None or value == "":
                continue
            params[spec.name] = value
        return params

    def shown_cost(self):
        """The price of the choices the form shows now (typed or initial), for the first paint."""
        values = {}
        for spec in self.model.priced_inputs():
            value = self[spec.name].value()
            allowed = {c.value for c in spec.choices}
            values[spec.name] = value if value in allowed else spec.default
        return self.model.cost(values)

    def shown_count(self):
        """How many videos the form shows now (typed or initial): 1 unless a valid choice."""
        value = str(self["count"].value() or "")
        return int(value) if value in dict(self.fields["count"].choices) else 1

    def shown_total(self):
        """The price of every video the form shows now, for the first paint."""
        return self.shown_cost() * self.shown_count()

    def with_new_key(self):
        """An unbound copy of this form, prefilled with what was typed, and a fresh key."""
        data = {name: self.data.get(name, "") for name in self.fields if name != "submission_key"}
        return JobForm(initial=data, model=self.model)


ACTIVE = "active"
STATUS_FILTERS = [
    ("", "Any status"),
    (ACTIVE, "In progress"),
    ("completed", "Completed"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
    ("refused", "Not sent"),
    ("unknown", "Outcome unknown"),
    ("awaiting", "Awaiting approval"),
    ("declined", "Declined"),
]


def _choice_filter(model, name, everything):
    spec = model.input(name)
    return forms.ChoiceField(
        label=spec.label,
        required=False,
        choices=[("", everything)] + [(c.value, c.label) for c in spec.choices],
    )


STARRED_MINE = "mine"
STARRED_TEAM = "team"
RATING_FILTERS = [
    ("", "Any rating"),
    ("5", "5 only"),
    ("4", "4 or more"),
    ("3", "3 or more"),
    ("2", "2 or more"),
    ("1", "Rated at all"),
]
# The filters a person sets in the "Filters" panel (sorting and the stack are not "filters").
PANEL_FILTERS = (
    "project",
    "member",
    "status",
    "quality",
    "duration",
    "aspect_ratio",
    "starred",
    "rating",
    "date_from",
    "date_to",
)


class PlausibleDates:
    """``date_from`` and ``date_to`` within years a person means (the history, the audit trail)."""

    def _plausible(self, name):
        day = self.cleaned_data.get(name)
        if day and not 2000 <= day.year <= 9000:
            raise forms.ValidationError("Choose a date between the years 2000 and 9000.")
        return day

    def clean_date_from(self):
        return self._plausible("date_from")

    def clean_date_to(self):
        return self._plausible("date_to")


class HistoryFilterForm(PlausibleDates, forms.Form):
    """The history's filters; only these names and values ever reach the query.

    Without ``user`` (the JSON API) the form has no star, rating or sort: those are one
    person's marks of the page they look at."""

    q = forms.CharField(label="Search prompts", required=False, max_length=200, strip=True)
    project = forms.CharField(label="Project", required=False, max_length=100, strip=True)
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_FILTERS)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # One stack's members, each on its own row (the "+2 more" link without JavaScript).
    stack = forms.UUIDField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, model=pricing.DEFAULT_MODEL, members=(), user=None, team_stars=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["quality"] = _choice_filter(model, "quality", "Any quality")
        self.fields["duration"] = _choice_filter(model, "duration", "Any duration")
        self.fields["aspect_ratio"] = _choice_filter(model, "aspect_ratio", "Any aspect ratio")
        if members:
            # Managers filter by member: only their own team's people are offered or accepted.
            self.fields["member"] = forms.TypedChoiceField(
                label="Member",
                required=False,
                coerce=int,
                empty_value=None,
                choices=[("", "Everyone")] + [(user.pk, user.get_username()) for user in members],
            )
        if user is not None:
            stars = [("", "All videos"), (STARRED_MINE, "Starred by me")]
            if team_stars:
                stars.append((STARRED_TEAM, "Starred by the team"))
            self.fields["starred"] = forms.ChoiceField(label="Stars", required=False, choices=stars)
            self.fields["rating"] = forms.TypedChoiceField(
                label="Your rating", required=False, coerce=int, empty_value=None, choices=RATING_FILTERS
            )
            self.fields["sort"] = forms.ChoiceField(
                label="Sort", required=False, choices=[(order.name, order.label) for order in history.ORDERS]
            )
        self.order_fields(["q", *PANEL_FILTERS, "sort", "stack"])

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def value(self, name):
        """The cleaned value of ``name``, or None (also when the form is invalid)."""
        return self.cleaned_data.get(name) if self.is_valid() else None

    @property
    def order(self):
        """The chosen sort (newest first unless another is chosen)."""
        return history.order_named(self.value("sort") or "")

    def apply(self, queryset):
        """``queryset`` narrowed by every valid filter (invalid ones are left out)."""
        data = self.cleaned_data if self.is_valid() else {}
        if data.get("q"):
            queryset = queryset.filter(prompt__icontains=data["q"])
        if data.get("project"):
            queryset = queryset.filter(project__iexact=data["project"])
        status = data.get("status")
        if status == ACTIVE:
            queryset = queryset.unfinished()
        elif status:
            queryset = queryset.filter(status=status)
        for name in ("quality", "aspect_ratio"):
            if data.get(name):
                queryset = queryset.filter(**{name: data[name]})
        if data.get("duration"):
            queryset = queryset.filter(duration=int(data["duration"]))
        if data.get("member"):
            queryset = queryset.filter(owner_id=data["member"])
        if data.get("stack"):
            queryset = queryset.filter(stack_key=data["stack"])
        start, end = data.get("date_from"), data.get("date_to")
        if start or end:
            queryset = queryset.in_local_dates(start, end)
        return self._apply_marks(queryset, data)

    def _apply_marks(self, queryset, data):
        if data.get("starred") == STARRED_MINE:
            queryset = history.starred_by(queryset, self.user)
        elif data.get("starred") == STARRED_TEAM:
            queryset = history.starred_by_team(queryset)
        if data.get("rating"):
            queryset = history.rated_at_least(queryset, self.user, data["rating"])
        return queryset

    @property
    def active(self):
        return self.is_valid() and any(self.cleaned_data.get(name) for name in ("q", *PANEL_FILTERS))

    @property
    def panel_count(self):
        """How many filters of the "Filters" panel are set (shown on its folded summary)."""
        return sum(1 for name in PANEL_FILTERS if self.value(name)) if self.is_valid() else 0


class SpendFilterForm(forms.Form):
    """The spend dashboard's period (and, for staff, team); unknown values fall back to this month."""

    EVERY_TEAM = "all"
    FIELDS = ("period", "start", "end", "team")
    SESSION_KEY = "spend_choice"  # where the dashboard remembers the last choice

    period = forms.ChoiceField(label="Period", required=False, choices=PERIODS)
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    # A team's id, or EVERY_TEAM; empty (an old link) reads as the person's default.
    team = forms.ChoiceField(label="Team", required=False)

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        if teams:
            every = [(self.EVERY_TEAM, "Every team")]
            self.fields["team"].choices = every + [(str(team.pk), team.name) for team in teams]
        else:
            del self.fields["team"]

    def clean_team(self):
        """A team's id, EVERY_TEAM, or None when not said."""
        value = self.cleaned_data["team"]
        return int(value) if value.isdigit() else value or None

    def choice(self):
        """The valid choice as query parameters (the dates only for a custom range)."""
        data = {name: self.data.get(name, "") for name in self.FIELDS if name in self.fields}
        if data.get("period") != "custom":
            data["start"] = data["end"] = ""
        return {name: value for name, value in data.items() if value}

    def describe(self, choice):
        """How a choice (as query parameters) reads: "this month, Demo team"."""
        words = [dict(PERIODS).get(choice.get("period"), "This month").lower()]
        if "team" in self.fields and choice.get("team"):
            words.append(dict(self.fields["team"].choices).get(choice["team"], ""))
        return ", ".join(word for word in words if word)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if data.get("period") == "custom":
            if not (start and end):
                raise forms.ValidationError("Choose both dates of the custom range.")
            if start > end:
                raise forms.ValidationError("The start date is after the end date.")
            if (end - start).days > MAX_CUSTOM_DAYS or not 2000 <= start.year <= 9000 or end.year > 9000:
                raise forms.ValidationError("Choose a range of at most two years.")
        return data

    def value(self, name):
        return self.cleaned_data.get(name) if self.is_valid() else None


class DecisionForm(forms.Form):
    """A manager's approval or decline, with an optional reason the requester reads."""

    note = forms.CharField(
        label="Reason",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": 2000}),
        error_messages={"max_length": "Keep the reason under %(limit_value)d characters."},
    )


class RaiseForm(forms.Form):
    """A temporary raise of one budget, for the current month only."""

    holder = forms.ChoiceField(
        label="Budget", error_messages={"invalid_choice": "Choose a budget from the list."}
    )
    amount = forms.DecimalField(
        label="Raise by (US$)",
        min_value=Decimal("0.01"),
        max_value=Decimal("1000000"),
        max_digits=13,
        decimal_places=6,
        error_messages={
            "required": "Say how much to add this month.",
            "min_value": "A raise must add at least $0.01.",
            "max_value": "A raise can add at most $1,000,000.",
        },
    )
    reason = forms.CharField(
        label="Reason",
        max_length=500,
        error_messages={
            "required": "Give a reason: it is shown beside the budget and kept in the audit trail."
        },
    )

    def __init__(self, *args, holders=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["holder"].choices = list(holders)

    def micro_cents(self):
        return pricing.dollars_to_micro_cents(self.cleaned_data["amount"])
