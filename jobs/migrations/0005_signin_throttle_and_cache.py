from django.core.management import call_command
from django.db import migrations, models


def create_cache_table(apps, schema_editor):
    # The 429 pause and the circuit breaker live in Django's database cache; creating its
    # table here means `migrate` alone is enough for a new or upgraded installation.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0004_covering_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="SignInThrottle",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(help_text="sha256 of the name and the address.", max_length=64, unique=True)),
                ("failures", models.PositiveIntegerField(default=0)),
                ("expires_at", models.DateTimeField(help_text="When this count is forgotten.")),
            ],
            options={
                "indexes": [models.Index(fields=["expires_at"], name="signin_throttle_expiry")],
            },
        ),
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]
