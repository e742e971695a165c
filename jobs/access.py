"""Who may see which jobs and spend: the one place the rule is written.

Staff see every job; a manager of a team sees the team's jobs; everyone else sees
their own. Every view, the status JSON, the dashboard and its CSV ask a ``Viewer``,
built once per request, and never filter jobs by person themselves.

The rule has two SQL forms. ``jobs()`` reads the profile first and filters on one
column, so PostgreSQL walks one index in order for lists. ``jobs_by_id()`` writes the
rule into the query itself and reads no profile first: a lookup by id is one query
(the status JSON is asked for every few seconds by every open page). An OR keeps
PostgreSQL from walking one index in order, so that form is only for ids.
tests/test_security.py proves the two agree for every role.
"""

from dataclasses import dataclass
from functools import cached_property

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from django.http import Http404
from django.shortcuts import get_object_or_404

from . import rollup
from .models import Job, Notice, Profile, Role, Team

MAX_JOB_ID = 2**63 - 1  # the largest id the database holds
# Staff may filter the history by anyone in a team; the choice list stops here.
MAX_MEMBER_CHOICES = 500


def profile_of(user):
    """The user's profile with its team, or None for a user with none (one query). It also
    says whether the person has notices waiting (``has_notices``), for the page to show."""
    unseen = Notice.objects.filter(user_id=OuterRef("user_id"), seen_at__isnull=True)
    return (
        Profile.objects.filter(user_id=user.pk)
        .select_related("team")
        .annotate(has_notices=Exists(unseen))
        .first()
    )


def managers_of(team):
    """A team's active managers, by name (none for no team)."""
    if team is None:
        return []
    people = get_user_model().objects.filter(profile__team=team, profile__role=Role.MANAGER, is_active=True)
    return list(people.order_by("username"))


def told_of(team):
    """The addresses told about a team's approval requests and budget alerts: its managers',
    or staff's when no manager has one (someone must hear of it)."""
    found = [person.email for person in managers_of(team) if person.email]
    if found:
        return found
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
    return list(staff.order_by("username").values_list("email", flat=True))


@dataclass(frozen=True)
class Scope:
    """The jobs a person may account for: their own, their team's, or (staff) any team's."""

    jobs: object
    label: str
    team: Team | None = None
    is_team: bool = False
    # A personal scope's own profile: its monthly budget is the dashboard's.
    profile: Profile | None = None
    # A personal scope's person (who may have no profile).
    owner_id: int | None = None


class Viewer:
    """One signed-in person's view of the studio's jobs and spend."""

    def __init__(self, user):
        self.user = user

    @classmethod
    def for_request(cls, request):
        """The request's viewer, built on first use and kept on the request."""
        viewer = getattr(request, "studio_viewer", None)
        if viewer is None or viewer.user is not request.user:
            viewer = request.studio_viewer = cls(request.user)
        return viewer

    @cached_property
    def profile(self):
        return profile_of(self.user)

    @property
    def is_manager(self):
        return self.profile is not None and self.profile.is_manager

    @property
    def decides(self):
        """Whether this person approves others' requests and reads the team's audit trail."""
        return self.user.is_staff or self.is_manager

    @property
    def sees_owners(self):
        """Whether this person sees other people's jobs (the history shows who made each)."""
        return self.user.is_staff or self.is_manager

    def _rule(self):
        """The rule as one (column, value) every visible job matches; None for every job."""
        if self.user.is_staff:
            return None
        if self.is_manager:
            return "team_id", self.profile.team_id
        return "owner_id", self.user.pk

    def jobs(self):
        """Every job this person may see, as one condition (for lists and counts)."""
        rule = self._rule()
        return Job.objects.all() if rule is None else Job.objects.filter(**{rule[0]: rule[1]})

    def job_count(self):
        """How many jobs this person may see, as an expression read from the monthly rollup
        (each job counts once in its person's and its team's months): a row a month,
        whatever the history."""
        rule = self._rule()
        return rollup.jobs_counted(**({"owner__isnull": False} if rule is None else {rule[0]: rule[1]}))

    def sees(self, job):
        """Whether this person may see ``job``: the same rule, on a job already loaded."""
        rule = self._rule()
        return rule is None or getattr(job, rule[0]) == rule[1]

    def _by_id(self):
        """The rule written into the query, with no profile read first (see the module)."""
        if self.user.is_staff:
            return Job.objects.all()
        managed = Profile.objects.filter(user_id=self.user.pk, role=Role.MANAGER, team__isnull=False)
        return Job.objects.filter(
            Q(team_id__in=managed.values("team_id")) | (Q(owner_id=self.user.pk) & ~Exists(managed))
        )

    def jobs_by_id(self, ids):
        """The jobs among ``ids`` this person may see, in one query (the status JSON)."""
        return self._by_id().filter(pk__in=ids)

    def job_or_404(self, job_id, fields=()):
        """The job if this person may see it, in one query; 404 otherwise. ``fields``
        loads only those columns."""
        if not 0 < job_id <= MAX_JOB_ID:
            raise Http404("No such job.")  # an id no job can have: no query
        jobs = self._by_id()
        return get_object_or_404(jobs.only(*fields) if fields else jobs, pk=job_id)

    def may_cancel(self, job):
        """Whoever may see a job may cancel it; PixelByte says whether it still can be."""
        return self.sees(job)

    def may_delete_files(self, job):
        """The studio's copy of a job's files may be deleted by its owner, a manager of its
        team, or staff; the job itself, its charge and its record always stay."""
        if not self.sees(job):
            return False
        if self.user.is_staff or job.owner_id == self.user.pk:
            return True
        return self.is_manager and job.team_id == self.profile.team_id

    def members(self):
        """The people a manager (or staff) may filter the history by; empty for everyone else."""
        people = get_user_model().objects.order_by("username")
        if self.user.is_staff:
            team_ids = Profile.objects.exclude(team=None).values("team_id")
            return list(people.filter(profile__team_id__in=team_ids)[:MAX_MEMBER_CHOICES])
        if not self.is_manager:
            return []
        return list(people.filter(profile__team_id=self.profile.team_id))

    def project_labels(self, recent=500):
        """Project labels used lately by the person's team (or by them), most recent first."""
        team_id = self.profile.team_id if self.profile else None
        jobs = Job.objects.filter(team_id=team_id) if team_id else Job.objects.filter(owner=self.user)
        labels = jobs.exclude(project="").order_by("-created_at").values_list("project", flat=True)[:recent]
        return list(dict.fromkeys(labels))[:50]

    def spend_teams(self):
        """The teams this person may pick on the dashboard (staff only)."""
        return list(Team.objects.order_by("name")) if self.user.is_staff else []

    def spend_scope(self, team_id=None):
        """The spend this person accounts for; ``team_id`` narrows staff to one team."""
        if self.user.is_staff:
            team = Team.objects.filter(pk=team_id).first() if team_id else None
            if team is not None:
                return Scope(Job.objects.filter(team=team), f"Team {team.name}", team, True)
            return Scope(Job.objects.all(), "Every team", None, True)
        profile = self.profile
        if self.is_manager:
            return Scope(self.jobs(), f"Team {profile.team.name}", profile.team, True)
        team = profile.team if profile else None
        return Scope(self.jobs(), "Your spend", team, False, profile, self.user.pk)
