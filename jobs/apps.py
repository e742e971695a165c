from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Kling Studio jobs"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
