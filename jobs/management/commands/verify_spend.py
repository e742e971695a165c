"""Prove the spend rollup equal to the jobs, or rebuild it.

python manage.py verify_spend          # report differences; exit 1 if there are any
python manage.py verify_spend --fix    # rebuild every row from the jobs
"""

from django.core.management.base import BaseCommand, CommandError

from jobs import rollup


class Command(BaseCommand):
    help = "Compare the spend rollup (each holder's months and days) with the jobs (--fix rebuilds it)."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="rebuild the rollup from the jobs")

    def handle(self, *args, fix=False, **options):
        found = rollup.differences()
        for key, (kept, truth) in sorted(found.items(), key=str):
            self.stdout.write(f"{_named(key)}: rollup {_shown(kept)}, jobs {_shown(truth)}")
        if not found:
            self.stdout.write("The spend rollup matches the jobs.")
            return
        if fix:
            rollup.rebuild()
            self.stdout.write(f"Rebuilt the spend rollup ({len(found)} difference(s) fixed).")
            return
        raise CommandError(
            f"{len(found)} difference(s) between the spend rollup and the jobs; run with --fix."
        )


def _named(key):
    if key[0] == "day":  # ("day", team or None, person, day, project, quality, duration)
        _, team, owner, day, project, quality, duration = key
        holder = f"team {team} person {owner}" if team is not None else f"person {owner}"
        return f"{holder} {day:%Y-%m-%d} ({project or 'no project'}, {quality}, {duration} s)"
    kind, holder, month = key
    return f"{kind} {holder} {month:%Y-%m}"


def _shown(values):
    """A month's (micro-cents, jobs), or a day's counts (SpendDay.COUNTS)."""
    if values is None:
        return "nothing"
    shown = f"{values[0]:,} µ¢ in {values[1]} job(s)"
    if len(values) > 2:
        charged, completed, refunded, unsent = values[2:]
        shown += f" ({charged} charged, {completed} completed, {refunded} refunded, {unsent} not sent)"
    return shown
