"""The prompt library: saved from the form, searched, used with its {variables} filled in,
counted, and deleted by those who may; another team's prompts are 404."""

import pytest
from django.test import Client

from jobs import library
from jobs.access import Viewer
from jobs.models import Role, SavedPrompt

from .helpers import make_member, make_team, make_user

pytestmark = pytest.mark.django_db

PRODUCT = "A {product} on a {surface}, slow dolly"


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def make_saved(owner, title="Product shot", prompt=PRODUCT, **options):
    return library.save(owner, title, prompt, options or {"quality": "pro", "duration": "10"})


def test_variables_are_named_in_order_once_and_other_braces_stay():
    assert library.variables("A {product} on a {surface} with {product}") == ["product", "surface"]
    assert library.variables("Keep { this } and {not-a-name} and {}") == []
    filled = library.fill("A {product} on {a b} {surface}", {"product": "mug", "surface": "oak"})
    assert filled == "A mug on {a b} oak"


def test_filling_without_every_value_names_the_missing_ones():
    with pytest.raises(library.MissingValues) as caught:
        library.fill(PRODUCT, {"product": "mug", "surface": "  "})
    assert caught.value.names == ["surface"]


def test_a_prompt_is_saved_to_the_team_with_its_options(owner, team):
    response = client_for(owner).post(
        "/library/save/",
        {
            "save-title": "Product shot",
            "save-prompt": PRODUCT,
            "save-quality": "pro",
            "save-duration": "10",
            "save-seed": "",
            "save-count": "2",
            "quality": "std",
        },
    )
    saved = SavedPrompt.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/library/#prompt-{saved.pk}"
    assert (saved.team, saved.owner, saved.prompt) == (team, owner, PRODUCT)
    assert saved.options == {"quality": "pro", "duration": "10", "count": "2"}


def test_a_save_without_title_or_prompt_is_shown_again_with_what_was_typed(owner):
    response = client_for(owner).post(
        "/library/save/", {"save-title": " ", "save-prompt": PRODUCT, "save-quality": "pro"}
    )
    assert response.status_code == 422
    assert "Give the prompt a title" in response.content.decode()
    assert "slow dolly" in response.content.decode()
    assert '<input type="hidden" name="save-quality" value="pro">' in response.content.decode()
    response = client_for(owner).post("/library/save/", {"save-title": "Empty", "save-prompt": ""})
    assert response.status_code == 422 and "Write the prompt to save." in response.content.decode()
    assert not SavedPrompt.objects.exists()


def test_the_library_lists_who_saved_when_and_how_often_and_searches(owner, teammate):
    make_saved(owner)
    other = make_saved(teammate, title="Drone over a lake", prompt="Aerial shot of a misty lake")
    SavedPrompt.objects.filter(pk=other.pk).update(uses=3)
    page = client_for(owner).get("/library/").content.decode()
    assert "Product shot" in page and "Drone over a lake" in page
    assert "Saved by teammate" in page and "used 3 times" in page and "not used yet" in page
    assert "Pro" in page and "10 seconds" in page
    found = client_for(owner).get("/library/", {"q": "MISTY"}).content.decode()
    assert "Drone over a lake" in found and "Product shot" not in found
    assert "Drone over a lake" in client_for(owner).get("/library/", {"q": "drone"}).content.decode()


def test_another_teams_prompts_are_not_listed_and_are_404(owner, outsider):
    saved = make_saved(owner)
    client = client_for(outsider)
    assert "Product shot" not in client.get("/library/").content.decode()
    assert client.get(f"/library/{saved.pk}/use/").status_code == 404
    assert client.post(f"/library/{saved.pk}/delete/").status_code == 404
    assert SavedPrompt.objects.filter(pk=saved.pk).exists()


def test_a_person_in_no_team_has_a_library_of_their_own(owner, loner):
    mine = make_saved(loner, title="Loner's")
    other_loner = make_user("other")
    assert mine.team is None
    assert list(library.visible(Viewer(loner))) == [mine]
    assert list(library.visible(Viewer(other_loner))) == []
    assert list(library.visible(Viewer(owner))) == []
    staff = make_user("boss", is_staff=True)
    assert list(library.visible(Viewer(staff))) == [mine]


def test_using_a_prompt_asks_for_each_variable(owner):
    saved = make_saved(owner)
    response = client_for(owner).get(f"/library/{saved.pk}/use/")
    page = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id-var_product">product</label>' in page
    assert '<label for="id-var_surface">surface</label>' in page
    saved.refresh_from_db()
    assert saved.uses == 0


def test_a_missing_value_is_an_error_on_the_fill_page(owner):
    saved = make_saved(owner)
    response = client_for(owner).get(f"/library/{saved.pk}/use/", {"fill": "1", "var_product": "mug"})
    assert response.status_code == 422
    page = response.content.decode()
    assert "Write a value for surface." in page and 'value="mug"' in page
    saved.refresh_from_db()
    assert saved.uses == 0


def test_filled_in_it_opens_the_form_prefilled_and_counts_the_use(owner):
    saved = make_saved(owner, quality="pro", duration="10", aspect_ratio="9:16", count="2", seed="42")
    params = {"fill": "1", "var_product": "mug", "var_surface": "oak table"}
    response = client_for(owner).get(f"/library/{saved.pk}/use/", params, follow=True)
    form = response.context["form"]
    assert response.status_code == 200 and response.redirect_chain[0][0].startswith("/?")
    assert form["prompt"].value() == "A mug on a oak table, slow dolly"
    assert [form[name].value() for name in ("quality", "duration", "aspect_ratio", "count", "seed")] == [
        "pro",
        "10",
        "9:16",
        "2",
        "42",
    ]
    assert "From the library: “Product shot”" in response.content.decode()
    client_for(owner).get(f"/library/{saved.pk}/use/", params)
    saved.refresh_from_db()
    assert saved.uses == 2


def test_a_prompt_without_variables_opens_the_form_at_once(owner):
    saved = make_saved(owner, title="Plain", prompt="A calm sea at dawn")
    response = client_for(owner).get(f"/library/{saved.pk}/use/", follow=True)
    assert response.context["form"]["prompt"].value() == "A calm sea at dawn"
    library.used(saved)
    saved.refresh_from_db()
    assert saved.uses == 2


def test_only_its_owner_a_manager_of_its_team_or_staff_may_delete_it(owner, teammate, manager, team):
    saved = make_saved(owner)
    assert client_for(teammate).post(f"/library/{saved.pk}/delete/").status_code == 404
    assert "Delete…" not in client_for(teammate).get("/library/").content.decode()
    assert "Delete…" in client_for(manager).get("/library/").content.decode()
    assert client_for(manager).post(f"/library/{saved.pk}/delete/").status_code == 302
    assert not SavedPrompt.objects.exists()

    again = make_saved(owner)
    other_manager = make_member("elsewhere", make_team("Elsewhere"), role=Role.MANAGER)
    assert not library.may_delete(Viewer(other_manager), again)
    assert library.may_delete(Viewer(make_user("root", is_staff=True)), again)
    assert client_for(owner).post(f"/library/{again.pk}/delete/").status_code == 302
    assert not SavedPrompt.objects.exists()


def test_delete_is_a_post(owner):
    saved = make_saved(owner)
    assert client_for(owner).get(f"/library/{saved.pk}/delete/").status_code == 405


def test_the_form_page_has_the_library_link_and_save_control(owner):
    page = client_for(owner).get("/").content.decode()
    assert 'href="/library/"' in page and ">Library</a>" in page
    assert 'action="/library/save/"' in page and "Save to library" in page


def test_the_form_opened_from_the_library_posts_as_the_form_does(owner, sandbox):
    saved = make_saved(owner, title="Plain", prompt="A calm sea at dawn")
    client = client_for(owner)
    form = client.get(f"/library/{saved.pk}/use/", follow=True).context["form"]
    data = {name: form[name].value() or "" for name in form.fields}
    response = client.post("/", data)  # the form opened from the library is the form itself
    assert response.status_code == 200
    assert owner.jobs.count() == 1
