from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Kling Studio jobs"

    def ready(self):
        from . import alerts, checks  # noqa: F401  (the system checks; alerts listen to the lifecycle)
