"""The prompt form, built from the model catalog in ``pricing``."""

import uuid

from django import forms

from . import pricing

CHOICE_ERROR = "Choose one of: %(allowed)s."


def field_for(spec):
    if spec.kind == "text":
        return forms.CharField(
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
    if spec.kind == "choice":
        allowed = ", ".join(c.value for c in spec.choices)
        return forms.ChoiceField(
            label=spec.label,
            choices=[(c.value, c.label) for c in spec.choices],
            initial=spec.default,
            required=spec.required,
            widget=forms.RadioSelect,
            error_messages={
                "required": f"Choose the {spec.label.lower()}.",
                "invalid_choice": (
                    f"“%(value)s” is not an allowed {spec.label.lower()}. "
                    + CHOICE_ERROR % {"allowed": allowed}
                ),
            },
        )
    if spec.kind == "integer":
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
    raise ValueError(f"unknown input kind {spec.kind!r}")


class JobForm(forms.Form):
    """One field per model input, named as the API names it, plus the submission key."""

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
        self.order_fields([spec.name for spec in model.inputs])
        if not self.is_bound:
            self.initial.setdefault("submission_key", uuid.uuid4())
            for name, value in model.defaults().items():
                self.initial.setdefault(name, value)

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

    def cost(self):
        """The server's own price for the cleaned input (never the browser's)."""
        return self.model.cost(self.params())

    def with_new_key(self):
        """An unbound copy of this form, prefilled with what was typed, and a fresh key."""
        data = {name: self.data.get(name, "") for name in self.fields if name != "submission_key"}
        return JobForm(initial=data, model=self.model)
