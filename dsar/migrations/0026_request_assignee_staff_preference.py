# A request's assignee and each staff member's console time zone. Both are new and nullable or
# separate, so the release before keeps working while this runs (docs/upgrading.md).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("dsar", "0025_request_period_parts"),
    ]

    operations = [
        migrations.AddField(
            model_name="request",
            name="assigned_to",
            field=models.ForeignKey(blank=True, help_text="The staff member working it, if anyone.", null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name="assigned_requests",
                                    to=settings.AUTH_USER_MODEL),
        ),
        migrations.CreateModel(
            name="StaffPreference",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("time_zone", models.CharField(default="UTC", help_text="An IANA time zone name, such as Europe/Berlin.", max_length=64)),
                ("time_zone_chosen", models.BooleanField(default=False, help_text="Chosen on the settings page: the browser's zone no "
                                                                                   "longer replaces it at sign-in.")),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="console_preference",
                                              to=settings.AUTH_USER_MODEL)),
            ],
        ),
    ]
