from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from jobs.accounts import ThrottledLoginView
from jobs.api import urls as api_urls

urlpatterns = [
    path("accounts/login/", login_not_required(ThrottledLoginView.as_view()), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("sandbox/", include("sandbox.urls")),
    path("api/v1/", api_urls()),
    path("", include("jobs.urls")),
]
