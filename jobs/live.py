"""The live parts of the job page and the history, for the status JSON.

Each part is drawn by the partial template the page itself includes, inside an element
marked ``data-role="<name>" data-job-id="<id>"``; static/js/live-status.js swaps the
server's HTML into that element. So a live page shows exactly what a reload would, and
no status wording is written twice.
"""

from django.template.loader import render_to_string

# Fragment name (the element's data-role) → the partial that draws its inside.
PARTS = {
    "status": "jobs/_status_body.html",  # badge, progress, late-job wording (page and history)
    "note": "jobs/_note_body.html",  # what went wrong or what the studio is doing (page)
    "timeline": "jobs/_timeline.html",  # page
    "player": "jobs/_player.html",  # page
    "charge": "jobs/_charge.html",  # page's "Charged", with its notes
    "thumb": "jobs/_thumb.html",  # history
    "cost": "jobs/_cost.html",  # history's "Cost" column
}


def requested(raw):
    """The part names listed in ``raw`` (``?parts=status,thumb,cost``: the parts the asking
    page shows), or every part when it names none."""
    names = [name for name in raw.split(",") if name in PARTS]
    return names or list(PARTS)


def fragments(job, request, names=PARTS):
    """The live parts of ``job`` named in ``names``, as HTML keyed by name.

    A plain context, not the request's context processors: those read the database,
    and the status JSON answers every open page every few seconds in one query.
    """
    context = {"job": job, "request": request}
    return {
        name: render_to_string(template, context).strip() for name, template in PARTS.items() if name in names
    }
