"""Fill the database with realistic made-up jobs, for benchmarks and demonstrations.

Teams with a manager and members (and a few people in no team), a year of jobs
from every status, the catalog's options and prices, project labels, and the
uneven activity of real teams: a few people make most of the videos. The same
``--seed`` gives the same data on the same database engine (but for the webhook tokens
of the Python path, the model's random default).

    python manage.py generate_jobs --jobs 200000

On PostgreSQL the jobs are written by the server itself, one ``INSERT … SELECT`` over
``generate_series`` with the random generator seeded by ``setseed()``: 2,000,000 jobs in
about a minute on two cores, where a COPY of rows made in Python took about twice as long
and keeping the indexes up to date four times. Elsewhere they are built as Python objects
and written in batches. Both draw from the same distributions. The PostgreSQL path holds the jobs table's lock while
it writes (it drops the table's secondary indexes and foreign keys and builds them again
afterwards, as PostgreSQL's "Populating a Database" advises): generate on a database
nobody is using.
"""

import json
import random
import time
import uuid
from datetime import timedelta
from itertools import accumulate, product
from math import prod

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
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
# How often each choice of the catalog's options is picked, in the order the catalog lists them.
CHOICE_WEIGHTS = {"quality": [70, 30], "duration": [75, 25], "aspect_ratio": [60, 30, 10]}
SEEDED = 0.3  # the share of jobs sent with a seed
# Settled jobs: mostly completed; failures and cancellations are refunded.
SETTLED = [Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.REFUSED]
SETTLED_WEIGHTS = [88, 6, 2, 3]
# The states of this week's unfinished jobs, processing twice as likely as the others.
RECENT_IN_FLIGHT = [Status.PENDING, Status.PROCESSING, Status.PROCESSING, Status.UNKNOWN]
DONE = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
PROGRESS = {Status.PROCESSING: 50, Status.COMPLETED: 100}
MEDIA = "https://media.example.com/kling"
ERRORS = {
    Status.FAILED: ("GENERATION_FAILED", "The video could not be generated."),
    Status.REFUSED: ("INSUFFICIENT_BALANCE", "Insufficient balance for this job."),
}
# Seconds: a fresh job was made this long ago; a sent one waited to be sent, queued and ran.
FRESH_AGE, SUBMIT_GAP, QUEUE_GAP, RUN_TIME = (5, 600), (0.2, 2), (5, 60), (60, 300)


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
        start = time.monotonic()
        if connection.vendor == "postgresql":
            how = "in SQL"
            with transaction.atomic():
                self._jobs_in_sql(rng, people, now, options)
        else:
            how = "as Python objects"
            self._jobs(rng, people, now, options)
        written = time.monotonic() - start
        # Rows written in bulk bypass the lifecycle: count them in the spend rollup.
        start = time.monotonic()
        rollup.rebuild()
        rebuilt = time.monotonic() - start
        self.stdout.write(
            f"Added {len(people)} people in {options['teams']} teams and {options['jobs']:,} jobs "
            f"(sign in as {prefix}-001, the busiest, or {prefix}-mgr-01, a manager)."
        )
        self.stdout.write(f"Jobs written {how} in {written:.1f} s; spend rollup rebuilt in {rebuilt:.1f} s.")

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

    # --- anywhere: Python objects, written in batches -----------------------------------

    def _jobs(self, rng, people, now, options):
        model = pricing.DEFAULT_MODEL
        weights = [1 / (k + 1) for k in range(len(people))]
        options_of = {name: model.input(name).choices for name in CHOICE_WEIGHTS}
        total, in_flight = options["jobs"], min(options["in_flight"], options["jobs"])
        span = timedelta(days=options["days"]).total_seconds()
        batch = []
        for i in range(total):
            owner, team = rng.choices(people, weights)[0]
            params = {"prompt": f"{rng.choice(SUBJECTS).capitalize()}, {rng.choice(STYLES)}"}
            for name, weights_of in CHOICE_WEIGHTS.items():
                params[name] = rng.choices(options_of[name], weights_of)[0].value
            if rng.random() < SEEDED:
                params["seed"] = rng.randrange(2**31)
            fresh = i >= total - in_flight
            age = rng.uniform(*FRESH_AGE) if fresh else rng.uniform(FRESH_AGE[1], span)
            created = now - timedelta(seconds=age)
            status = rng.choice(RECENT_IN_FLIGHT) if fresh else rng.choices(SETTLED, SETTLED_WEIGHTS)[0]
            batch.append(self._job(rng, owner, team, model, params, status, created))
            if len(batch) == 5000:
                Job.objects.bulk_create(batch)
                batch = []
        Job.objects.bulk_create(batch)

    def _job(self, rng, owner, team, model, params, status, created):
        cost = model.cost(params)
        sent = status != Status.REFUSED
        submitted = created + timedelta(seconds=rng.uniform(*SUBMIT_GAP)) if sent else None
        started = submitted + timedelta(seconds=rng.uniform(*QUEUE_GAP)) if sent else None
        took = timedelta(seconds=rng.uniform(*RUN_TIME))
        remote = f"job_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}" if sent else None
        media = f"{MEDIA}/{remote}" if status == Status.COMPLETED else ""
        return Job(
            owner=owner,
            team=team,
            project=rng.choice(PROJECTS),
            submission_key=uuid.UUID(int=rng.getrandbits(128)),
            **Job.input_fields(model, params),
            status=status,
            progress=PROGRESS.get(status, 0),
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
            completed_at=submitted + took if status in DONE and sent else None,
            estimated_completion_at=submitted + timedelta(seconds=model.typical_seconds) if sent else None,
            updated_at=created,
            next_check_at=created + timedelta(seconds=30) if status not in TERMINAL else None,
        )

    # --- PostgreSQL: the server writes the rows -----------------------------------------

    def _jobs_in_sql(self, rng, people, now, options):
        """The same kind of jobs as ``_jobs`` makes, written by one INSERT … SELECT."""
        table = connection.ops.quote_name(Job._meta.db_table)
        unfilled = [
            f.column
            for f in Job._meta.concrete_fields
            if not (f.null or f.primary_key or f.column in FILLED or f.has_db_default())
        ]
        if unfilled:
            raise CommandError(f"generate_jobs does not fill {', '.join(unfilled)}: add it to FILLED.")
        with connection.cursor() as cursor:
            # random() repeats its sequence after setseed(), and a query calling it never runs
            # in parallel (random() is parallel restricted), so a seed gives the same rows.
            cursor.execute("SELECT setseed(%s)", [rng.uniform(-1, 1)])
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")  # for the index builds
            rebuild = _drop_secondary_indexes(cursor, table)
            cursor.execute(*_insert_sql(table, people, now, options))
            for statement in rebuild:
                cursor.execute(statement)


def _drop_secondary_indexes(cursor, table):
    """Drop the table's indexes, unique constraints and foreign keys (not its primary key):
    building each once over millions of rows is several times faster than keeping them up
    to date row by row, and a foreign key is then checked in one pass instead of once a row.
    Returns the statements that make them again as they were: the model's own indexes as
    its migrations made them, the rest as PostgreSQL describes them."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype IN ('u', 'f') ORDER BY contype DESC, conname",
        [table],
    )
    constraints = cursor.fetchall()  # the unique ones first, so they are made again first
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indrelid = %s::regclass"
        " AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass)"
        " ORDER BY 1",
        [table, table],
    )
    indexes = cursor.fetchall()
    with connection.schema_editor(atomic=False) as editor:
        # PostgreSQL prints a partial index's condition in a form that reads back differently.
        declared = {index.name: str(index.create_sql(Job, editor)) for index in Job._meta.indexes}
    quote = connection.ops.quote_name
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")  # a regclass name comes quoted where it must be
    for name, _ in constraints:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {quote(name)}")
    again = [
        f"ALTER TABLE {table} ADD CONSTRAINT {quote(name)} {definition}" for name, definition in constraints
    ]
    unique = [statement for statement in again if " UNIQUE " in statement]
    return [
        *unique,
        *(declared.get(name, definition) for name, definition in indexes),
        *(statement for statement in again if statement not in unique),
    ]


def _edges(weights):
    """The lower edge of each choice's share of [0, 1): ``width_bucket(random(), edges)`` is k
    (from 1) with the probability weights[k - 1] / sum(weights)."""
    total = sum(weights)
    return [0.0, *(w / total for w in accumulate(weights[:-1]))]


# Each column of a generated job and the SQL that fills it from one row of ``_insert_sql``'s
# draws (``job``): the same rules as ``Command._job``.
FILLED = {
    "owner_id": "owner_id",
    "team_id": "team_id",
    "project": "project",
    "submission_key": "hash::uuid",
    "model_slug": "%(slug)s",
    "prompt": "prompt",
    "quality": "quality",
    "duration": "duration",
    "aspect_ratio": "aspect_ratio",
    "seed": "seed",
    "params": """jsonb_build_object('prompt', prompt, 'quality', quality, 'duration', duration::text,
                                    'aspect_ratio', aspect_ratio)
                 || CASE WHEN seed IS NULL THEN '{}' ELSE jsonb_build_object('seed', seed) END""",
    "status": "status",
    "progress": "COALESCE((%(progress)s::jsonb ->> status)::int, 0)",
    "estimated_micro_cents": "cost",
    "api_cost_micro_cents": "CASE WHEN sent AND status <> 'unknown' THEN cost END",
    "refunded_micro_cents": "CASE WHEN status IN ('failed', 'cancelled') THEN cost ELSE 0 END",
    "remote_id": "CASE WHEN sent THEN remote_id END",
    "request_id": "CASE WHEN sent THEN 'req_' || right(hash, 12) ELSE '' END",
    "webhook_token": "md5(hash)",
    "error_code": "COALESCE(%(errors)s::jsonb #>> ARRAY[status, '0'], '')",
    "error_message": "COALESCE(%(errors)s::jsonb #>> ARRAY[status, '1'], '')",
    "output_url": "CASE WHEN completed THEN %(media)s || '/' || remote_id || '/video.mp4' ELSE '' END",
    "thumbnail_url": "CASE WHEN completed THEN %(media)s || '/' || remote_id || '/thumb.jpg' ELSE '' END",
    "poster_url": "CASE WHEN completed THEN %(media)s || '/' || remote_id || '/poster.jpg' ELSE '' END",
    "outputs": """CASE WHEN completed
                  THEN jsonb_build_object('video_url', %(media)s || '/' || remote_id || '/video.mp4') END""",
    "created_at": "created_at",
    "submitted_at": "submitted_at",
    "started_at": "CASE WHEN status <> 'pending' THEN submitted_at + make_interval(secs => queue_gap) END",
    "completed_at": "CASE WHEN status = ANY(%(done)s) THEN submitted_at + make_interval(secs => run_time) END",
    "estimated_completion_at": "submitted_at + make_interval(secs => %(typical)s)",
    "updated_at": "created_at",
    "next_check_at": "CASE WHEN status <> ALL(%(terminal)s) THEN created_at + interval '30 seconds' END",
    "check_failures": "0",
    "archive_status": "''",
    "archive_attempts": "0",
    "archive_error": "''",
    "callback_url": "''",
}


# One INSERT … SELECT that draws every job in the server (see ``_insert_sql``): only the
# table's name, column lists and constants are put into the text, every value is a parameter.
INSERT_SQL = """
    INSERT INTO {table} ({columns})
    SELECT {values}
    FROM (
        SELECT *,
            status = 'completed' AS completed,
            CASE WHEN sent THEN 'job_' || left(hash, 20) END AS remote_id,
            CASE WHEN sent THEN created_at + make_interval(secs => submit_gap) END AS submitted_at
        FROM (
            SELECT
                (%(owners)s::int[])[who] AS owner_id,
                (%(teams)s::bigint[])[who] AS team_id,
                (%(projects)s::text[])[project_pick] AS project,
                md5(%(key)s || i) AS hash,
                (%(subjects)s::text[])[subject] || ', ' || (%(styles)s::text[])[style] AS prompt,
                (%(quality_values)s::text[])[pick_quality] AS quality,
                (%(duration_values)s::text[])[pick_duration]::smallint AS duration,
                (%(aspect_ratio_values)s::text[])[pick_aspect_ratio] AS aspect_ratio,
                (%(costs)s::bigint[])[1 + {position}] AS cost,
                CASE WHEN seed_draw < %(seeded)s THEN seed_value END AS seed,
                status,
                status <> 'refused' AS sent,
                %(now)s::timestamptz - make_interval(secs => age) AS created_at,
                submit_gap, queue_gap, run_time
            FROM (
                SELECT *,
                    CASE WHEN fresh THEN (%(fresh_states)s::text[])[1 + floor(status_draw * {fresh_states})::int]
                         ELSE (%(settled_states)s::text[])[width_bucket(status_draw, %(settled_edges)s::float8[])]
                    END AS status,
                    CASE WHEN fresh THEN {fresh_from} + age_draw * {fresh_span}
                         ELSE {fresh_to} + age_draw * (%(span)s - {fresh_to})
                    END AS age
                FROM (
                    -- Every draw of a job, in one fixed order. OFFSET 0 keeps each level from
                    -- being merged into the one above, where each use of a column would be
                    -- computed again (and each random() drawn again).
                    SELECT
                        i,
                        i > %(settled)s AS fresh,
                        width_bucket(random(), %(who)s::float8[]) AS who,
                        1 + floor(random() * {subjects})::int AS subject,
                        1 + floor(random() * {styles})::int AS style,
                        {picks},
                        random() AS seed_draw,
                        floor(random() * 2147483648)::bigint AS seed_value,
                        random() AS age_draw,
                        random() AS status_draw,
                        1 + floor(random() * {projects})::int AS project_pick,
                        {submit_from} + random() * {submit_span} AS submit_gap,
                        {queue_from} + random() * {queue_span} AS queue_gap,
                        {run_from} + random() * {run_span} AS run_time
                    FROM generate_series(1, %(total)s) AS i
                    OFFSET 0
                ) AS draws
                OFFSET 0
            ) AS picked
            OFFSET 0
        ) AS drawn
        OFFSET 0
    ) AS job
"""


def _insert_sql(table, people, now, options):
    """(SQL, parameters) of one INSERT … SELECT writing ``options["jobs"]`` jobs."""
    model = pricing.DEFAULT_MODEL
    choices = {name: [c.value for c in model.input(name).choices] for name in CHOICE_WEIGHTS}
    # Every combination's price, from the catalog, looked up by its position in this list.
    sizes = [len(values) for values in choices.values()]
    costs = [
        model.cost({name: choices[name][k] for name, k in zip(choices, combination, strict=True)})
        for combination in product(*(range(size) for size in sizes))
    ]
    position = " + ".join(f"(pick_{name} - 1) * {prod(sizes[k + 1 :])}" for k, name in enumerate(choices))
    picks = ",\n".join(
        f"width_bucket(random(), %({name}_edges)s::float8[]) AS pick_{name}" for name in choices
    )
    sql = INSERT_SQL.format(
        table=table,
        columns=", ".join(FILLED),
        values=", ".join(FILLED.values()),
        position=position,
        picks=picks,
        fresh_states=len(RECENT_IN_FLIGHT),
        fresh_from=FRESH_AGE[0],
        fresh_to=FRESH_AGE[1],
        fresh_span=FRESH_AGE[1] - FRESH_AGE[0],
        subjects=len(SUBJECTS),
        styles=len(STYLES),
        projects=len(PROJECTS),
        submit_from=SUBMIT_GAP[0],
        submit_span=SUBMIT_GAP[1] - SUBMIT_GAP[0],
        queue_from=QUEUE_GAP[0],
        queue_span=QUEUE_GAP[1] - QUEUE_GAP[0],
        run_from=RUN_TIME[0],
        run_span=RUN_TIME[1] - RUN_TIME[0],
    )
    return sql, _insert_params(model, choices, costs, people, now, options)


def _insert_params(model, choices, costs, people, now, options):
    """The parameters of ``INSERT_SQL``: the people, the catalog's prices and the draws' odds."""
    total, in_flight = options["jobs"], min(options["in_flight"], options["jobs"])
    return {
        "total": total,
        "settled": total - in_flight,
        "owners": [user.pk for user, _ in people],
        "teams": [team.pk if team else None for _, team in people],
        "who": _edges([1 / (k + 1) for k in range(len(people))]),
        "subjects": [subject.capitalize() for subject in SUBJECTS],
        "styles": STYLES,
        "projects": PROJECTS,
        "seeded": SEEDED,
        "settled_states": [str(s) for s in SETTLED],
        "settled_edges": _edges(SETTLED_WEIGHTS),
        "fresh_states": [str(s) for s in RECENT_IN_FLIGHT],
        "costs": costs,
        "now": now,
        "span": timedelta(days=options["days"]).total_seconds(),
        "key": f"{options['prefix']}:{options['seed']}:",
        "slug": model.slug,
        "typical": model.typical_seconds,
        "progress": json.dumps({str(k): v for k, v in PROGRESS.items()}),
        "errors": json.dumps({str(k): v for k, v in ERRORS.items()}),
        "media": MEDIA,
        "done": [str(s) for s in DONE],
        "terminal": [str(s) for s in TERMINAL],
        **{f"{name}_values": values for name, values in choices.items()},
        **{f"{name}_edges": _edges(CHOICE_WEIGHTS[name]) for name in choices},
    }
