"""Prove the spend rollup equal to the jobs, or rebuild it.

python manage.py verify_spend          # report differences; exit 1 if there are any
python manage.py verify_spend --fix    # rebuild every row from the jobs
"""

from django.core.management.base import BaseCommand, CommandError

from jobs import rollup


class Command(BaseCommand):
    help = "Compare each budget holder's monthly spend rollup with its jobs (--fix rebuilds it)."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="rebuild the rollup from the jobs")

    def handle(self, *args, fix=False, **options):
        found = rollup.differences()
        for (kind, holder, month), (kept, truth) in sorted(found.items(), key=str):
            self.stdout.write(f"{kind} {holder} {month:%Y-%m}: rollup {_shown(kept)}, jobs {_shown(truth)}")
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


def _shown(pair):
    return "nothing" if pair is None else f"{pair[0]:,} µ¢ in {pair[1]} job(s)"
