"""The viewer: who may see which jobs and spend, for each role."""

import pytest
from django.http import Http404
from django.test import RequestFactory

from jobs.access import Viewer
from jobs.models import Job, Profile, Role

from .helpers import make_job, make_user


@pytest.fixture
def cast(team, owner, teammate, manager, outsider, loner, staff):
    """The shared cast: a team with a manager and two members, another team with its own
    member, a person in no team, and staff."""
    people = {"owner": owner, "teammate": teammate, "manager": manager, "outsider": outsider}
    people.update(loner=loner, staff=staff, red=team, blue=outsider.profile.team)
    return people


def made_by(person, **extra):
    profile = Profile.objects.filter(user=person).first()
    return make_job(person, team=profile.team if profile else None, **extra)


def visible(viewer):
    return set(viewer.jobs().values_list("owner__username", flat=True))


def test_an_owner_sees_their_own_jobs_and_nobody_elses(cast):
    mine, theirs = made_by(cast["owner"]), made_by(cast["teammate"])
    viewer = Viewer(cast["owner"])
    assert visible(viewer) == {"owner"}
    assert viewer.job_or_404(mine.pk) == mine
    with pytest.raises(Http404):
        viewer.job_or_404(theirs.pk)
    assert viewer.may_cancel(mine) and not viewer.may_cancel(theirs)
    assert (viewer.is_manager, viewer.sees_owners, viewer.members()) == (False, False, [])


def test_a_manager_sees_the_teams_jobs_and_may_filter_by_its_members(cast):
    for name in ("owner", "teammate", "outsider"):
        made_by(cast[name])
    viewer = Viewer(cast["manager"])
    assert visible(viewer) == {"owner", "teammate"}
    assert viewer.is_manager and viewer.sees_owners
    assert [user.username for user in viewer.members()] == ["manager", "owner", "teammate"]
    scope = viewer.spend_scope()
    assert (scope.label, scope.team, scope.is_team) == (f"Team {cast['red'].name}", cast["red"], True)


def test_an_outsider_gets_404_for_another_teams_job(cast):
    job = made_by(cast["owner"])
    viewer = Viewer(cast["outsider"])
    with pytest.raises(Http404):
        viewer.job_or_404(job.pk)
    assert list(viewer.jobs_by_id([job.pk])) == [] and not viewer.jobs().exists()
    assert not viewer.may_cancel(job)
    assert not viewer.spend_scope().jobs.exists()


def test_staff_see_every_job_and_may_pick_any_team(cast):
    for name in ("owner", "outsider", "loner"):
        made_by(cast[name])
    viewer = Viewer(cast["staff"])
    assert visible(viewer) == {"owner", "outsider", "loner"} and viewer.sees_owners
    assert {user.username for user in viewer.members()} == {"manager", "owner", "teammate", "outsider"}
    assert viewer.spend_teams() == [cast["blue"], cast["red"]]
    assert viewer.spend_scope().label == "Every team"
    blue = viewer.spend_scope(cast["blue"].pk)
    assert (blue.label, blue.team) == (f"Team {cast['blue'].name}", cast["blue"])
    assert set(blue.jobs.values_list("owner__username", flat=True)) == {"outsider"}
    assert viewer.spend_scope(999_999).label == "Every team"


def test_a_person_in_no_team_sees_their_own_and_accounts_for_their_own(cast):
    made_by(cast["loner"], project="Solo")
    made_by(cast["owner"], project="Red work")
    viewer = Viewer(cast["loner"])
    assert viewer.profile is None and visible(viewer) == {"loner"}
    scope = viewer.spend_scope()
    assert (scope.label, scope.is_team, scope.profile) == ("Your spend", False, None)
    assert viewer.project_labels() == ["Solo"]


def test_a_member_is_offered_the_teams_project_labels_but_sees_only_their_jobs(cast):
    made_by(cast["teammate"], project="Acme")
    made_by(cast["outsider"], project="Blue work")
    viewer = Viewer(cast["owner"])
    assert viewer.project_labels() == ["Acme"] and not viewer.jobs().exists()


def test_a_manager_of_no_team_is_treated_as_a_member(cast):
    boss = make_user("lone_boss")
    Profile.objects.create(user=boss, role=Role.MANAGER)
    made_by(boss)
    made_by(cast["owner"])
    viewer = Viewer(boss)
    assert not viewer.is_manager and visible(viewer) == {"lone_boss"} and viewer.members() == []


def test_a_lookup_by_id_is_one_query_and_reads_no_profile(cast, django_assert_num_queries):
    job = made_by(cast["owner"])
    for name in ("owner", "manager"):
        viewer = Viewer(cast[name])
        with django_assert_num_queries(1):
            assert viewer.job_or_404(job.pk, fields=("pk", "status")).pk == job.pk
        with django_assert_num_queries(1):
            assert [j.pk for j in viewer.jobs_by_id([job.pk, job.pk + 1])] == [job.pk]


def test_a_list_filters_on_one_column(cast):
    """One condition lets PostgreSQL walk one index in order; the by-id form may not."""
    for name, column in (("owner", "owner_id"), ("manager", "team_id")):
        where = str(Viewer(cast[name]).jobs().query).split(" WHERE ")[1]
        assert " OR " not in where and column in where


def test_the_viewer_is_built_once_per_request_and_left_off_the_user(cast, django_assert_num_queries):
    request = RequestFactory().get("/")
    request.user = cast["manager"]
    profile = Profile.objects.get(user=request.user)
    viewer = Viewer.for_request(request)
    assert Viewer.for_request(request) is viewer
    with django_assert_num_queries(1):
        assert viewer.profile == Viewer.for_request(request).profile == profile
        assert viewer.is_manager and viewer.sees_owners
    assert "_studio_profile" not in vars(cast["manager"])
    other = RequestFactory().get("/")
    other.user = cast["manager"]
    assert Viewer.for_request(other) is not viewer


def test_every_role_agrees_between_the_list_and_the_lookup_by_id(cast):
    jobs = [made_by(cast[name]) for name in ("owner", "teammate", "manager", "outsider", "loner")]
    ids = [job.pk for job in jobs]
    for name in ("owner", "teammate", "manager", "outsider", "loner", "staff"):
        viewer = Viewer(cast[name])
        listed = set(viewer.jobs().filter(pk__in=ids).values_list("pk", flat=True))
        assert set(viewer.jobs_by_id(ids).values_list("pk", flat=True)) == listed, name
        assert {job.pk for job in Job.objects.filter(pk__in=ids) if viewer.sees(job)} == listed, name
