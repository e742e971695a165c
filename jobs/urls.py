from django.urls import path

from . import views
from .views.account import account, finished
from .views.approvals import approval_list, approve, decline, grant_raise
from .views.audit import audit_export, audit_list
from .views.library import library_delete, library_list, library_save, library_use
from .views.review import compare, job_mark
from .views.share import share_job, share_revoke, shared_page, shared_poster, shared_video
from .views.tokens import token_list, token_revoke
from .views.watching import stop_watching

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
    # The prompt library: searched, saved to from the form, used (variables filled in), deleted.
    path("library/", library_list, name="library"),
    path("library/save/", library_save, name="library_save"),
    path("library/<int:saved_id>/use/", library_use, name="library_use"),
    path("library/<int:saved_id>/delete/", library_delete, name="library_delete"),
    # --- part 12: review ---
    # A person's star and rating of a job; two to four videos side by side.
    path("jobs/<int:job_id>/mark/", job_mark, name="mark"),
    path("jobs/compare/", compare, name="compare"),
    # --- part 12: share ---
    # Share links: made and revoked by whoever looks after the job; watched without signing in.
    path("jobs/<int:job_id>/share/", share_job, name="share"),
    path("jobs/<int:job_id>/share/<int:link_id>/revoke/", share_revoke, name="share_revoke"),
    path("s/<str:token>/", shared_page, name="shared"),
    path("s/<str:token>/video", shared_video, name="shared_video"),
    path("s/<str:token>/poster", shared_poster, name="shared_poster"),
    # Finished while you were away: what every page asks; a person's own preferences.
    path("jobs/finished/", finished, name="finished"),
    path("account/", account, name="account"),
    # --- part 12: pages ---
    # A stuck job: stop asking PixelByte about it (its owner, a manager or staff).
    path("jobs/<int:job_id>/stop-watching/", stop_watching, name="stop_watching"),
    # Cancel's confirmation as a page, for browsers without JavaScript.
    path("jobs/<int:job_id>/cancel/confirm/", views.job_cancel_confirm, name="cancel_confirm"),
    path("webhooks/pixelbyte/<str:token>/", views.pixelbyte_webhook, name="webhook"),
]
