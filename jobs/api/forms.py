"""The page's form, fed from JSON: one set of rules (catalog, lengths, seed range, project
label) for people and scripts, plus what only the API has, the job's ``webhook_url``."""

from django import forms
from django.core.validators import URLValidator

from .. import callbacks
from ..forms import JobForm

MAX_URL_LENGTH = 2000  # Job.callback_url


class ApiJobForm(JobForm):
    webhook_url = forms.CharField(
        required=False,
        max_length=MAX_URL_LENGTH,
        error_messages={"max_length": "A webhook URL is at most %(limit_value)d characters."},
    )

    @classmethod
    def from_body(cls, body, submission_key):
        """The form bound to a request body (``schemas.JobIn``) and the job's key."""
        data = {
            "prompt": body.prompt,
            "quality": body.quality,
            "duration": str(body.duration),
            "aspect_ratio": body.aspect_ratio,
            "seed": "" if body.seed is None else str(body.seed),
            "project": body.project,
            "webhook_url": body.webhook_url,
            "submission_key": str(submission_key),
        }
        return cls(data)

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"].strip()
        if not url:
            return ""
        try:
            URLValidator(schemes=["https", "http"])(url)
        except forms.ValidationError:
            raise forms.ValidationError("Give a full URL, such as https://example.com/hooks/kling.") from None
        # The rule the callback is sent under, checked again (with the name resolved) then.
        refusal = callbacks.url_refusal(url)
        if refusal:
            raise forms.ValidationError(refusal)
        return url

    def same_job(self, job):
        """Whether ``job`` is what this form asks for (an idempotent retry), or another request."""
        return (
            job.model_slug == self.model.slug
            and job.params == self.params()
            and job.project == self.cleaned_data["project"]
            and job.callback_url == self.cleaned_data["webhook_url"]
        )
