"""Fill the database with realistic made-up jobs, for benchmarks and demonstrations.

Teams with a manager and members (and a few people in no team), a year of jobs
from every status, the catalog's options and prices, project labels, and the
uneven activity of real teams: a few people make most of the videos. The same
``--seed`` gives the same data.

    python manage.py generate_jobs --jobs 200000
"""

import random
import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from jobs import pricing, rollup
from jobs.models import TERMINAL, Job, Profile, Role, Status, Team

SUBJECTS = [
    "a lighthouse on a cliff",
    "a red fox in fresh snow",
    "a neon city street in the rain",
    "a hot air balloon over vineyards",
    "an astronaut tending a greenhouse",
    "a paper boat on a stream",
    "a barista pouring latte art",
    "a whale breaching at sunrise",
    "a vintage train crossing a viaduct",
    "a skateboarder in an empty pool",
]
STYLES = [
    "at dusk, slow aerial orbit",
    "macro lens, shallow depth of field",
    "handheld, documentary look",
    "golden hour, cinematic lighting",
    "in the style of a 1970s film",
    "top-down drone shot",
    "soft morning fog, gentle dolly in",
]
PROJECTS = ["", "", "Spring campaign", "Website hero", "Social", "Pitch deck", "Onboarding"]
# Settled jobs: mostly completed; failures and cancellations are refunded.
SETTLED = [Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.REFUSED]
SETTLED_WEIGHTS = [88, 6, 2, 3]
# The states of this week's unfinished jobs, processing twice as likely as the others.
RECENT_IN_FLIGHT = [Status.PENDING, Status.PROCESSING, Status.PROCESSING, Status.UNKNOWN]
MEDIA = "https://media.example.com/kling"
ERRORS = {
    Status.FAILED: ("GENERATION_FAILED", "The video could not be generated."),
    Status.REFUSED: ("INSUFFICIENT_BALANCE", "Insufficient balance for this job."),
}


class Command(BaseCommand):
    help = "Add made-up teams, people and a year of jobs (for benchmarks and demos)."

    def add_arguments(self, parser):
        parser.add_argument("--jobs", type=int, default=1000, help="How many jobs (default 1,000).")
        parser.add_argument("--teams", type=int, default=8, help="How many teams (default 8).")
        parser.add_argument("--people", type=int, default=60, help="How many people (default 60).")
        parser.add_argument("--days", type=int, default=365, help="Spread the jobs over this many days.")
        parser.add_argument("--in-flight", type=int, default=200, help="Jobs still being made (default 200).")
        parser.add_argument("--prefix", default="gen", help="User names start with this (default gen).")
        parser.add_argument("--password", default="kling-demo", help="Everyone's password.")
        parser.add_argument("--seed", type=int, default=1, help="Random seed: the same seed, the same data.")

    def handle(self, *args, **options):
        if options["jobs"] < 1 or options["people"] < options["teams"] or options["teams"] < 1:
            raise CommandError("Need at least one job, one team, and as many people as teams.")
        prefix = options["prefix"]
        User = get_user_model()
        if User.objects.filter(username__startswith=f"{prefix}-").exists():
            raise CommandError(f"People named {prefix}-… already exist: pick another --prefix.")
        rng = random.Random(options["seed"])
        now = timezone.now()
        with transaction.atomic():
            people = self._people(User, rng, prefix, options)
        self._jobs(rng, people, now, options)
        # Rows written in bulk bypass the lifecycle: count them in their holders' months.
        rollup.rebuild()
        self.stdout.write(
            f"Added {len(people)} people in {options['teams']} teams and {options['jobs']:,} jobs "
            f"(sign in as {prefix}-001, the busiest, or {prefix}-mgr-01, a manager)."
        )

    def _people(self, User, rng, prefix, options):
        password = make_password(options["password"])  # hashed once: hashing is slow on purpose
        teams = [
            Team.objects.create(
                name=f"{prefix.title()} team {t + 1:02d}",
                monthly_budget_micro_cents=rng.choice([None, 500_000_000, 2_000_000_000]),
            )
            for t in range(options["teams"])
        ]
        people = []
        for t, team in enumerate(teams):
            manager = User.objects.create(username=f"{prefix}-mgr-{t + 1:02d}", password=password)
            Profile.objects.create(user=manager, team=team, role=Role.MANAGER)
            people.append((manager, team))
        for n in range(options["people"] - len(teams)):
            user = User.objects.create(username=f"{prefix}-{n + 1:03d}", password=password)
            # Most people are in a team (the busiest in the first); one in ten works alone.
            team = teams[0] if n == 0 else (None if n % 10 == 5 else teams[n % len(teams)])
            Profile.objects.create(
                user=user, team=team, monthly_budget_micro_cents=rng.choice([None, None, 100_000_000])
            )
            people.append((user, team))
        # The busiest first: person k makes jobs in proportion to 1/k.
        people.sort(key=lambda p: (p[0].username.startswith(f"{prefix}-mgr"), p[0].username))
        return people

    def _jobs(self, rng, people, now, options):
        model = pricing.DEFAULT_MODEL
        weights = [1 / (k + 1) for k in range(len(people))]
        quality = model.input("quality").choices
        duration = model.input("duration").choices
        aspect = model.input("aspect_ratio").choices
        total, in_flight = options["jobs"], min(options["in_flight"], options["jobs"])
        span = timedelta(days=options["days"]).total_seconds()
        batch = []
        for i in range(total):
            owner, team = rng.choices(people, weights)[0]
            params = {
                "prompt": f"{rng.choice(SUBJECTS).capitalize()}, {rng.choice(STYLES)}",
                "quality": rng.choices(quality, [70, 30])[0].value,
                "duration": rng.choices(duration, [75, 25])[0].value,
                "aspect_ratio": rng.choices(aspect, [60, 30, 10])[0].value,
            }
            if rng.random() < 0.3:
                params["seed"] = rng.randrange(2**31)
            fresh = i >= total - in_flight
            created = now - timedelta(seconds=rng.uniform(5, 600) if fresh else rng.uniform(600, span))
            status = rng.choice(RECENT_IN_FLIGHT) if fresh else rng.choices(SETTLED, SETTLED_WEIGHTS)[0]
            batch.append(self._job(rng, owner, team, model, params, status, created))
            if len(batch) == 5000:
                Job.objects.bulk_create(batch)
                batch = []
        Job.objects.bulk_create(batch)

    def _job(self, rng, owner, team, model, params, status, created):
        cost = model.cost(params)
        sent = status != Status.REFUSED
        submitted = created + timedelta(seconds=rng.uniform(0.2, 2)) if sent else None
        started = submitted + timedelta(seconds=rng.uniform(5, 60)) if sent else None
        took = timedelta(seconds=rng.uniform(60, 300))
        done = status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
        remote = f"job_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}" if sent else None
        media = f"{MEDIA}/{remote}" if status == Status.COMPLETED else ""
        return Job(
            owner=owner,
            team=team,
            project=rng.choice(PROJECTS),
            submission_key=uuid.UUID(int=rng.getrandbits(128)),
            **Job.input_fields(model, params),
            status=status,
            progress={Status.PROCESSING: 50, Status.COMPLETED: 100}.get(status, 0),
            api_cost_micro_cents=cost if sent and status != Status.UNKNOWN else None,
            refunded_micro_cents=cost if status in (Status.FAILED, Status.CANCELLED) else 0,
            remote_id=remote,
            request_id=f"req_{rng.getrandbits(48):012x}" if sent else "",
            error_code=ERRORS.get(status, ("", ""))[0],
            error_message=ERRORS.get(status, ("", ""))[1],
            output_url=f"{media}/video.mp4" if media else "",
            thumbnail_url=f"{media}/thumb.jpg" if media else "",
            poster_url=f"{media}/poster.jpg" if media else "",
            outputs={"video_url": f"{media}/video.mp4"} if media else None,
            created_at=created,
            submitted_at=submitted,
            started_at=started if status != Status.PENDING and sent else None,
            completed_at=submitted + took if done and sent else None,
            estimated_completion_at=submitted + timedelta(seconds=model.typical_seconds) if sent else None,
            updated_at=created,
            next_check_at=created + timedelta(seconds=30) if status not in TERMINAL else None,
        )
