"""The prompt library: prompts (with the form's options) a team keeps to use again.

A prompt may hold ``{variables}`` ("A {product} on a {surface}, slow dolly") that are filled
in at use. A person sees their team's library, or their own prompts when in no team; staff
see every library. A prompt may be deleted by whoever saved it, a manager of its team, or staff.
"""

import re

from django.db.models import F, Q

from . import pricing
from .access import profile_of
from .models import SavedPrompt

# A variable is a name of letters, digits and underscores in braces; other braces stay as typed.
VARIABLE = re.compile(r"\{([A-Za-z0-9_]+)\}")
# The form's options a saved prompt keeps, as the form names them.
OPTION_NAMES = ("quality", "duration", "aspect_ratio", "count", "seed")
MAX_OPTION_LENGTH = 40


class MissingValues(ValueError):
    """``fill`` was not given a value for every variable."""

    def __init__(self, names):
        self.names = list(names)
        super().__init__("Give a value for " + ", ".join(self.names) + ".")


def visible(viewer):
    """The saved prompts ``viewer`` (a ``jobs.access.Viewer``) may see and use."""
    if viewer.user.is_staff:
        return SavedPrompt.objects.all()
    profile = viewer.profile
    if profile is not None and profile.team_id is not None:
        return SavedPrompt.objects.filter(team_id=profile.team_id)
    return SavedPrompt.objects.filter(team=None, owner=viewer.user)


def search(prompts, query):
    """``prompts`` whose title or text contains ``query`` (any case); all for an empty query."""
    query = (query or "").strip()
    if not query:
        return prompts
    return prompts.filter(Q(title__icontains=query) | Q(prompt__icontains=query))


def clean_options(options):
    """The known options only, as the form's strings; empty ones left out."""
    kept = {}
    for name in OPTION_NAMES:
        value = options.get(name)
        if value is None or str(value).strip() == "":
            continue
        kept[name] = str(value).strip()[:MAX_OPTION_LENGTH]
    return kept


def save(user, title, prompt, options):
    """Keep ``prompt`` with its ``options`` in the library of ``user``'s team (or their own)."""
    profile = profile_of(user)
    return SavedPrompt.objects.create(
        team_id=profile.team_id if profile else None,
        owner=user,
        title=title.strip(),
        prompt=prompt,
        options=clean_options(options),
    )


def variables(prompt):
    """The ``{name}`` placeholders of ``prompt``, in order of first appearance, each once."""
    return list(dict.fromkeys(VARIABLE.findall(prompt)))


def fill(prompt, values):
    """``prompt`` with every variable replaced by its value; ``MissingValues`` names those
    not given (or given blank)."""
    missing = [name for name in variables(prompt) if not str(values.get(name, "")).strip()]
    if missing:
        raise MissingValues(missing)
    return VARIABLE.sub(lambda match: str(values[match.group(1)]).strip(), prompt)


def used(saved):
    """Count one use, in the database (two people using it at once both count)."""
    SavedPrompt.objects.filter(pk=saved.pk).update(uses=F("uses") + 1)


def may_delete(viewer, saved):
    if viewer.user.is_staff or saved.owner_id == viewer.user.pk:
        return True
    return viewer.is_manager and saved.team_id is not None and saved.team_id == viewer.profile.team_id


def delete(viewer, saved):
    """Delete ``saved`` if ``viewer`` may; return whether it was deleted."""
    if not may_delete(viewer, saved):
        return False
    saved.delete()
    return True


def describe(options):
    """The options as a person reads them: "Pro", "10 s", "9:16", "2 videos", "Seed 7"."""
    words = []
    for spec in pricing.DEFAULT_MODEL.inputs:
        value = options.get(spec.name)
        if value in (None, "") or spec.name == "prompt":
            continue
        if spec.name == "seed":
            words.append(f"Seed {value}")
            continue
        labels = {str(choice.value): choice.label for choice in spec.choices or ()}
        words.append(labels.get(str(value), str(value)))
    count = options.get("count")
    if count and str(count) != "1":
        words.append(f"{count} videos")
    return words
