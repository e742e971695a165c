from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "kling-demo"


class Command(BaseCommand):
    help = "Create (or reset) the demo account used by `make run` and print its credentials."

    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo account {'created' if created else 'ready'}: "
                f"username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}"
            )
        )
