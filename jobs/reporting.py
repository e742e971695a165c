"""What an error report may show: Django's debug page and the mail to the admins.

Django's ``SafeExceptionReporterFilter`` hides settings and request headers by name,
and hides local variables only in functions marked ``sensitive_variables``, and only
while DEBUG is off. The studio's secrets pass through frames it does not own
(requests and urllib3 carry the Authorization header in their locals), and a debug
page left on is exactly when a leak would happen, so this filter works in every mode
and also hides any value that contains one of the secrets, whatever its name.
"""

import re

from django.conf import settings
from django.views.debug import SafeExceptionReporterFilter

# The sandbox key is derived from SECRET_KEY, so it is as secret.
SECRET_SETTINGS = (
    "PIXELBYTE_API_KEY",
    "PIXELBYTE_WEBHOOK_SECRET",
    "SECRET_KEY",
    "SANDBOX_API_KEY",
    "EMAIL_HOST_PASSWORD",
)


class StudioExceptionReporterFilter(SafeExceptionReporterFilter):
    # Django's names plus a few more; META keys match too (HTTP_AUTHORIZATION, HTTP_COOKIE,
    # HTTP_X_PIXELBYTE_SIGNATURE).
    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CREDENTIAL|PRIVATE|DATABASE_URL|EMAIL_URL",
        flags=re.I,
    )

    def is_active(self, request):
        return True

    def cleanse_setting(self, key, value):
        if self._reveals(value):
            return self.cleansed_substitute
        return super().cleanse_setting(key, value)

    def get_traceback_frame_variables(self, request, tb_frame):
        return [
            (name, self.cleansed_substitute if self._reveals(value) else value)
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def _reveals(self, value):
        secrets = [s for s in (getattr(settings, name, "") for name in SECRET_SETTINGS) if s]
        if not secrets:
            return False
        try:
            shown = value if isinstance(value, str) else repr(value)
        except Exception:
            return True  # what cannot be looked at cannot be shown safely either
        return any(secret in shown for secret in secrets)
