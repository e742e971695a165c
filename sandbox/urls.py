from django.urls import path

from . import views

app_name = "sandbox"

urlpatterns = [
    path("v1/jobs/submit", views.submit, name="submit"),
    path("v1/jobs", views.list_jobs, name="list"),
    path("v1/jobs/<str:job_id>", views.job_status, name="status"),
    path("v1/jobs/<str:job_id>/cancel", views.cancel, name="cancel"),
    path("cdn/<str:job_id>/<str:name>", views.cdn, name="cdn"),
]
