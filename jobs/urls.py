from django.urls import path

from . import views

app_name = "jobs"

urlpatterns = [
    path("", views.new_job, name="new"),
    path("healthz", views.health, name="health"),
    path("jobs/", views.job_list, name="list"),
    path("jobs/status/", views.job_statuses, name="statuses"),
    path("jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("jobs/<int:job_id>/status/", views.job_status, name="status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
    path("spend/", views.spend_dashboard, name="spend"),
    path("spend/export.csv", views.spend_export, name="spend_export"),
    path("webhooks/pixelbyte/<str:token>/", views.pixelbyte_webhook, name="webhook"),
]
