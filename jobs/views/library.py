"""The prompt library (/library/): search it, save the form's prompt to it, use a prompt
(filling in its ``{variables}``) and delete one.

Prompts another team keeps are 404 here, as jobs are. "Use" renders the prompt form itself,
prefilled: the form's own view reads no initial values from the query string.
"""

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from .. import library, pricing
from ..access import Viewer

# The list shows this many prompts, most used first.
SHOWN = 200
# A variable's value arrives as ``var_<name>``, so no variable can clash with another parameter.
PREFIX = "var_"
# The save form's fields are ``save-title``, ``save-prompt``, ``save-quality``...: on the prompt
# form's page no two inputs share a name.
SAVE = "save"


class SaveForm(forms.Form):
    title = forms.CharField(
        label="Title",
        max_length=100,
        strip=True,
        error_messages={
            "required": "Give the prompt a title, so your team can find it.",
            "max_length": "A title is at most %(limit_value)d characters.",
        },
    )
    prompt = forms.CharField(
        label="Prompt",
        max_length=pricing.DEFAULT_MODEL.input("prompt").max_length,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write the prompt to save."},
    )


@require_GET
def library_list(request):
    """The library this person may use, searched by ``?q=``."""
    return _render_library(request, SaveForm(prefix=SAVE), options={})


def _render_library(request, form, options, status=200):
    viewer = Viewer.for_request(request)
    query = request.GET.get("q", "").strip()[:200]
    found = library.search(library.visible(viewer), query).select_related("owner", "team")
    shown = list(found[: SHOWN + 1])
    entries = [
        {
            "saved": saved,
            "options": library.describe(saved.options),
            "variables": library.variables(saved.prompt),
            "may_delete": library.may_delete(viewer, saved),
        }
        for saved in shown[:SHOWN]
    ]
    context = {
        "entries": entries,
        "more": len(shown) > SHOWN,
        "query": query,
        "form": form,
        "options": options,
        "show_team": request.user.is_staff,
    }
    return render(request, "jobs/library.html", context, status=status)


@require_POST
def library_save(request):
    """The form's prompt and options, kept under a title; a bad one is shown again with all typed."""
    form = SaveForm(request.POST, prefix=SAVE)
    options = library.clean_options(
        {name: request.POST.get(f"{SAVE}-{name}") for name in library.OPTION_NAMES}
    )
    if not form.is_valid():
        return _render_library(request, form, options, status=422)
    saved = library.save(request.user, form.cleaned_data["title"], form.cleaned_data["prompt"], options)
    messages.success(request, f"Saved “{saved.title}” to the library.")
    return redirect(f"{reverse('jobs:library')}#prompt-{saved.pk}")


def _saved_or_404(request, saved_id):
    return get_object_or_404(library.visible(Viewer.for_request(request)), pk=saved_id)


@require_GET
def library_use(request, saved_id):
    """Ask for the prompt's variables (if any), then open the form prefilled with it."""
    saved = _saved_or_404(request, saved_id)
    names = library.variables(saved.prompt)
    values = {name: request.GET.get(PREFIX + name, "") for name in names}
    if names and "fill" not in request.GET:
        return _render_fill(request, saved, names, values)
    try:
        prompt = library.fill(saved.prompt, values)
    except library.MissingValues as exc:
        return _render_fill(request, saved, names, values, missing=exc.names, status=422)
    library.used(saved)
    messages.info(request, f"From the library: “{saved.title}”. Change anything, then generate.")
    return redirect(reverse("jobs:new") + "?" + urlencode({**saved.options, "prompt": prompt}))


def _render_fill(request, saved, names, values, missing=(), status=200):
    fields = [
        {"name": name, "input": PREFIX + name, "value": values.get(name, ""), "missing": name in missing}
        for name in names
    ]
    context = {
        "saved": saved,
        "fields": fields,
        "missing": missing,
        "options": library.describe(saved.options),
    }
    return render(request, "jobs/library_fill.html", context, status=status)


@require_POST
def library_delete(request, saved_id):
    """Delete a prompt (its owner, a manager of its team, or staff); others get 404."""
    viewer = Viewer.for_request(request)
    saved = _saved_or_404(request, saved_id)
    if not library.delete(viewer, saved):
        raise Http404("No such prompt.")
    messages.success(request, f"Deleted “{saved.title}” from the library.")
    return redirect("jobs:library")
