from django.urls import path

from . import views
from .views.approvals import approval_list, approve, decline, grant_raise
from .views.audit import audit_export, audit_list
from .views.tokens import token_list, token_revoke

app_name = "jobs"

urlpatterns = [
    path("", views.new_job, name="new"),
    path("healthz", views.health, name="health"),
    path("jobs/", views.job_list, name="list"),
    path("jobs/status/", views.job_statuses, name="statuses"),
    path("jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("jobs/<int:job_id>/status/", views.job_status, name="status"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
    # What the studio keeps, behind the same access rule as the job.
    path("jobs/export.zip", views.export_zip, name="export_zip"),
    path("jobs/<int:job_id>/video", views.job_video, name="video"),
    path("jobs/<int:job_id>/thumbnail", views.job_thumbnail, name="thumbnail"),
    path("jobs/<int:job_id>/poster", views.job_poster, name="poster"),
    path("jobs/<int:job_id>/sidecar.json", views.job_sidecar, name="sidecar"),
    path("jobs/<int:job_id>/download", views.job_download, name="download"),
    path("jobs/<int:job_id>/delete-files/", views.job_delete_files, name="delete_files"),
    path("spend/", views.spend_dashboard, name="spend"),
    path("spend/export.csv", views.spend_export, name="spend_export"),
    path("spend/raises/", grant_raise, name="grant_raise"),
    # Jobs waiting for a manager: each decision is a POST to its own URL.
    path("approvals/", approval_list, name="approvals"),
    path("approvals/<int:job_id>/approve/", approve, name="approve"),
    path("approvals/<int:job_id>/decline/", decline, name="decline"),
    # Who changed money or access, and when.
    path("audit/", audit_list, name="audit"),
    path("audit/export.csv", audit_export, name="audit_export"),
    # A person's API tokens: made (shown once) and revoked here.
    path("tokens/", token_list, name="tokens"),
    path("tokens/<int:token_id>/revoke/", token_revoke, name="token_revoke"),
    # --- part 12: iterate ---
    # --- part 12: review ---
    # --- part 12: share ---
    # --- part 12: pages ---
    path("webhooks/pixelbyte/<str:token>/", views.pixelbyte_webhook, name="webhook"),
]
