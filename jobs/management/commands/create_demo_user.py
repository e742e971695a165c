from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from jobs.models import Profile, Role, Team

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "kling-demo"
DEMO_TEAM = "Demo team"
DEMO_TEAM_BUDGET = 25_000_000  # $25.00 a month


class Command(BaseCommand):
    help = "Create (or reset) the demo account used by `make run` and print its credentials."

    def handle(self, *args, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = True
        user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        team, _ = Team.objects.get_or_create(
            name=DEMO_TEAM, defaults={"monthly_budget_micro_cents": DEMO_TEAM_BUDGET}
        )
        Profile.objects.update_or_create(user=user, defaults={"team": team, "role": Role.MANAGER})
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo account {'created' if created else 'ready'}: "
                f"username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r} "
                f"(manager of {DEMO_TEAM!r}, budget $25.00 a month)"
            )
        )
