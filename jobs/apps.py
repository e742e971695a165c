from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Kling Studio jobs"

    def ready(self):
        # The system checks; alerts, callbacks and the long-job email listen to the lifecycle.
        from . import alerts, callbacks, checks, notify  # noqa: F401
