"""The spend rollup's truth computed inside PostgreSQL: the same sums as
``jobs.rollup._truth``, grouped by the server, so proving or rebuilding the rollup of
millions of jobs takes seconds and never loads them into Python.

Each holder's zone is decided in Python (``rollup.zone_named``: an unreadable name is UTC,
none is the display zone) and handed over as JSON, so both paths put a job in the same day.
"""

import json

from django.db import connection

from . import rollup
from .models import NOT_CHARGED, Job, Profile, SpendDay, SpendMonth, Status, Team
from .rollup import NOT_SENT, REFUNDED, zone_named

TABLES = {
    "job": Job._meta.db_table,
    "day": SpendDay._meta.db_table,
    "month": SpendMonth._meta.db_table,
}


def _in(values):
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def _jobs_with_zones():
    """(SQL, parameters) of every job with its billed amount, its status classes and the
    dates of its creation in its person's and its team's zones."""
    display = zone_named("").key
    people = [
        {"id": user, "zone": zone_named(name).key}
        for user, name in Profile.objects.values_list("user_id", "time_zone")
    ]
    teams = [
        {"id": pk, "zone": zone_named(name).key} for pk, name in Team.objects.values_list("pk", "time_zone")
    ]
    not_charged, refunded, not_sent = sorted(NOT_CHARGED), sorted(REFUNDED), sorted(NOT_SENT)
    sql = f"""
        SELECT j.owner_id, j.team_id, j.api_token_id, j.project, j.quality, j.duration,
               (j.created_at AT TIME ZONE COALESCE(pz.zone, %s))::date AS person_day,
               (j.created_at AT TIME ZONE tz.zone)::date AS team_day,
               CASE WHEN j.status IN {_in(not_charged)} THEN 0
                    ELSE COALESCE(j.api_cost_micro_cents, j.estimated_micro_cents) END AS billed,
               (j.status NOT IN {_in(not_charged)})::int AS charged,
               (j.status = %s)::int AS completed,
               (j.status IN {_in(refunded)})::int AS refunded,
               (j.status IN {_in(not_sent)})::int AS unsent
        FROM {TABLES["job"]} j
        LEFT JOIN json_to_recordset(%s::json) AS pz(id int, zone text) ON pz.id = j.owner_id
        LEFT JOIN json_to_recordset(%s::json) AS tz(id int, zone text) ON tz.id = j.team_id
    """  # noqa: S608
    params = [display, *not_charged, *not_charged, Status.COMPLETED, *refunded, *not_sent]
    return sql, [*params, json.dumps(people), json.dumps(teams)]


SUMS = "SUM(billed)::bigint, COUNT(*)::int, SUM(charged)::int, SUM(completed)::int, SUM(refunded)::int, SUM(unsent)::int"


def _truth_sql():
    """(the WITH clause naming every job with its zones' dates as ``j``, SQL of the day rows,
    SQL of the month rows, parameters)."""
    jobs, params = _jobs_with_zones()
    days = f"""
        SELECT team_id, owner_id, team_day AS day, project, quality, duration, {SUMS}
          FROM j WHERE team_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6
        UNION ALL
        SELECT NULL::int, owner_id, person_day, project, quality, duration, {SUMS}
          FROM j GROUP BY 2, 3, 4, 5, 6
    """  # noqa: S608
    # A token's months are its person's: the job's own person's day says them.
    months = """
        SELECT owner_id, NULL::int AS team_id, NULL::int AS token_id,
               date_trunc('month', person_day)::date AS month, SUM(billed)::bigint, COUNT(*)::int
          FROM j GROUP BY 1, 4
        UNION ALL
        SELECT NULL, team_id, NULL, date_trunc('month', team_day)::date, SUM(billed)::bigint, COUNT(*)::int
          FROM j WHERE team_id IS NOT NULL GROUP BY 2, 4
        UNION ALL
        SELECT NULL, NULL, api_token_id, date_trunc('month', person_day)::date, SUM(billed)::bigint, COUNT(*)::int
          FROM j WHERE api_token_id IS NOT NULL GROUP BY 3, 4
    """
    return f"WITH j AS MATERIALIZED ({jobs})", days, months, params


def insert_truth():
    """Fill the (emptied) rollup tables from the jobs: two statements."""
    with_jobs, days, months, params = _truth_sql()
    counts = ", ".join(SpendDay.COUNTS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{with_jobs} INSERT INTO {TABLES['day']} (team_id, owner_id, day, project, quality, duration, {counts}) {days}",  # noqa: S608
            params,
        )
        cursor.execute(
            f"{with_jobs} INSERT INTO {TABLES['month']} (owner_id, team_id, token_id, month, billed_micro_cents, jobs) {months}",  # noqa: S608
            params,
        )


def differences():
    """``rollup.differences()``, with both sides compared inside the server: only the rows
    that differ come back."""
    with_jobs, days, months, params = _truth_sql()
    with connection.cursor() as cursor:
        found = _day_differences(cursor, with_jobs, days, params)
        found.update(_month_differences(cursor, with_jobs, months, params))
    storage = rollup._compare(rollup.stored_storage(), rollup.recompute_storage(), (0, 0))
    found.update({("storage", *key): pair for key, pair in storage.items()})
    return found


def _day_differences(cursor, with_jobs, days, params):
    counts = ", ".join(SpendDay.COUNTS)
    key = "COALESCE({0}.team_id, 0), {0}.owner_id, {0}.day, {0}.project, {0}.quality, {0}.duration"
    cursor.execute(
        f"""{with_jobs}, t (team_id, owner_id, day, project, quality, duration, {counts}) AS ({days}),
            s AS (SELECT team_id, owner_id, day, project, quality, duration, {counts} FROM {TABLES["day"]})
        SELECT COALESCE(s.team_id, t.team_id), COALESCE(s.owner_id, t.owner_id), COALESCE(s.day, t.day),
               COALESCE(s.project, t.project), COALESCE(s.quality, t.quality),
               COALESCE(s.duration, t.duration), s.owner_id IS NOT NULL,
               {", ".join(f"s.{c}" for c in SpendDay.COUNTS)}, t.owner_id IS NOT NULL,
               {", ".join(f"t.{c}" for c in SpendDay.COUNTS)}
        FROM s FULL OUTER JOIN t ON ({key.format("s")}) = ({key.format("t")})
        WHERE ({", ".join(f"COALESCE(s.{c}, 0)" for c in SpendDay.COUNTS)})
           IS DISTINCT FROM ({", ".join(f"COALESCE(t.{c}, 0)" for c in SpendDay.COUNTS)})
        """,  # noqa: S608
        params,
    )
    return {
        ("day", *row[:6]): (tuple(row[7:13]) if row[6] else None, tuple(row[14:20]) if row[13] else None)
        for row in cursor.fetchall()
    }


def _month_differences(cursor, with_jobs, months, params):
    key = "COALESCE({0}.owner_id, 0), COALESCE({0}.team_id, 0), COALESCE({0}.token_id, 0), {0}.month"
    cursor.execute(
        f"""{with_jobs}, t (owner_id, team_id, token_id, month, billed_micro_cents, jobs) AS ({months}),
            s AS (SELECT owner_id, team_id, token_id, month, billed_micro_cents, jobs FROM {TABLES["month"]})
        SELECT s.owner_id, s.team_id, s.token_id, s.month, s.billed_micro_cents, s.jobs,
               t.owner_id, t.team_id, t.token_id, t.month, t.billed_micro_cents, t.jobs
        FROM s FULL OUTER JOIN t ON ({key.format("s")}) = ({key.format("t")})
        WHERE (COALESCE(s.billed_micro_cents, 0), COALESCE(s.jobs, 0))
           IS DISTINCT FROM (COALESCE(t.billed_micro_cents, 0), COALESCE(t.jobs, 0))
        """,  # noqa: S608
        params,
    )
    found = {}
    for row in cursor.fetchall():
        kept, truth = row[:6] if row[3] is not None else None, row[6:] if row[9] is not None else None
        found[_month_key(*(kept or truth)[:4])] = (kept and tuple(kept[4:]), truth and tuple(truth[4:]))
    return found


def _month_key(owner, team, token, month):
    if owner is not None:
        return ("owner", owner, month)
    return ("team", team, month) if team is not None else ("token", token, month)
