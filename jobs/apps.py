from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Kling Studio jobs"

    def ready(self):
        # The system checks; alerts and callbacks listen to the lifecycle.
        from . import alerts, callbacks, checks  # noqa: F401
