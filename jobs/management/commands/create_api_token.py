"""Make an API token for a person from the command line, for operators.

    python manage.py create_api_token alice --name "nightly CI" --expires-days 90 --budget-dollars 25

The token's last line of output is the token alone (``... | tail -1``). The audit trail
names the studio as the maker, on the person's behalf.
"""

from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.views.decorators.debug import sensitive_variables

from jobs import pricing, tokens

DEFAULT_NAME = "created by an operator"


class Command(BaseCommand):
    help = (
        "Create an API token (scopes submit and read) for USERNAME and print it, alone, as the "
        "last line of output. It is shown once: the studio keeps only its hash."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--name", default=DEFAULT_NAME, help=f'What will use it (default "{DEFAULT_NAME}").'
        )
        parser.add_argument("--expires-days", metavar="N", help="Expire after N days (default: never).")
        parser.add_argument(
            "--budget-dollars",
            metavar="X",
            help="A monthly budget of the token's own, in US$ (default: none).",
        )

    @sensitive_variables("raw")
    def handle(self, *args, **options):
        user = _person(options["username"])
        name = _name(options["name"])
        days = _days(options["expires_days"])
        budget = _micro_cents(options["budget_dollars"])
        token, raw = tokens.create(
            user,
            name=name,
            expires_at=None if days is None else tokens.expiry_after(days),
            budget=budget,
            actor=None,  # the studio, at an operator's hand
        )
        self.stdout.write(
            f"Created API token “{token.name}” ({token.prefix}…) for {user.get_username()}: "
            f"{tokens.describe(token)}."
        )
        self.stdout.write(
            f"Webhook secret (signs the callbacks of jobs sent with it): {token.webhook_secret}"
        )
        self.stdout.write("Shown once: the studio keeps only a hash. The token:")
        self.stdout.write(raw)


def _person(username):
    try:
        user = get_user_model().objects.get_by_natural_key(username)
    except get_user_model().DoesNotExist:
        raise CommandError(f"No user named “{username}”.") from None
    if not user.is_active:
        raise CommandError(f"{username} may not sign in (inactive): a token of theirs would not work.")
    return user


def _name(raw):
    name = (raw or "").strip()
    if not name:
        raise CommandError("--name must not be empty.")
    if len(name) > 100:
        raise CommandError("--name is at most 100 characters.")
    return name


def _days(raw):
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= tokens.MAX_EXPIRY_DAYS:
        raise CommandError(
            f"--expires-days must be a whole number of days from 1 to {tokens.MAX_EXPIRY_DAYS}, not “{raw}”."
        )
    return int(text)


def _micro_cents(raw):
    if raw is None:
        return None
    try:
        dollars = Decimal(raw.strip().removeprefix("$"))
    except InvalidOperation:
        dollars = None
    if dollars is None or not dollars.is_finite():
        raise CommandError(
            f"--budget-dollars must be an amount in dollars, such as 25 or 12.50, not “{raw}”."
        )
    if dollars < 0:
        raise CommandError(f"--budget-dollars cannot be negative ({raw}).")
    if dollars > tokens.MAX_BUDGET_DOLLARS:
        raise CommandError(
            f"--budget-dollars can be at most {pricing.format_dollars(pricing.dollars_to_micro_cents(tokens.MAX_BUDGET_DOLLARS))}."
        )
    return pricing.dollars_to_micro_cents(dollars)
