from django.db import migrations, models

COST = "api_cost_micro_cents"


class Migration(migrations.Migration):
    """``charged_micro_cents`` held PixelByte's reported cost; the name now says so.

    The database only renames the column: PostgreSQL and SQLite carry the rename into the
    indexes and the check constraint themselves, so nothing is rebuilt. The state is told
    the same in Django's terms."""

    dependencies = [
        ("jobs", "0006_webhook_tally_and_job_mismatch"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RenameField(model_name="job", old_name="charged_micro_cents", new_name=COST),
            ],
            state_operations=[
                migrations.RenameField(model_name="job", old_name="charged_micro_cents", new_name=COST),
                migrations.RemoveIndex(model_name="job", name="job_owner_created"),
                migrations.RemoveIndex(model_name="job", name="job_team_created"),
                migrations.RemoveConstraint(model_name="job", name="job_charge_not_negative"),
                migrations.AddIndex(
                    model_name="job",
                    index=models.Index(
                        fields=["owner", "-created_at", "-id"],
                        include=("status", COST, "estimated_micro_cents"),
                        name="job_owner_created",
                    ),
                ),
                migrations.AddIndex(
                    model_name="job",
                    index=models.Index(
                        fields=["team", "-created_at", "-id"],
                        include=("status", COST, "estimated_micro_cents", "owner", "project", "quality", "duration"),
                        name="job_team_created",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="job",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("api_cost_micro_cents__isnull", True), ("api_cost_micro_cents__gte", 0), _connector="OR"),
                        name="job_charge_not_negative",
                    ),
                ),
            ],
        ),
    ]
