"""The JSON API, under /api/v1/: the studio's second door, for scripts (django-ninja).

Token requests go through the same forms, budgets, lifecycle and access rule as the pages
(``jobs.py`` calls what the views call); the library parses and checks the JSON, writes the
OpenAPI 3.1 document from the code, serves its reference page from the studio's own static
files, and counts each token's requests (``auth.TokenRateThrottle``).
"""

from django.contrib.auth.decorators import login_not_required
from ninja import NinjaAPI, Swagger

from . import errors
from .auth import TokenRateThrottle
from .jobs import router

api = NinjaAPI(
    title="Kling Studio API",
    version="1",
    description="Make Kling videos through the studio, within the same budgets, approvals and "
    "records as the page. Send `Authorization: Bearer <token>` (make one at /tokens/).",
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    # No call to swagger.io's validator: the page loads nothing from outside the studio.
    docs=Swagger(settings={"validatorUrl": None, "persistAuthorization": False}),
    throttle=[TokenRateThrottle()],
)
errors.install(api)
api.add_router("", router)


def urls():
    """The API's URL patterns for ``include()``. None of them sends anyone to the sign-in
    page: a bearer token, checked by each route, is how a request signs in here."""
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        login_not_required(pattern.callback)
    return patterns, app_name, namespace
