import datetime as dt

from django.db import migrations, models


def expire_in_ninety_days(apps, schema_editor):
    """Tokens made before tokens expired work for 90 days from their making, as new ones do."""
    StaffToken = apps.get_model("dsar", "StaffToken")
    for token in StaffToken.objects.all():
        StaffToken.objects.filter(pk=token.pk).update(expires_at=token.created_at + dt.timedelta(days=90))


class Migration(migrations.Migration):

    dependencies = [
        ("dsar", "0010_second_factor_setup_code"),
    ]

    operations = [
        migrations.AddField(model_name="stafftoken", name="expires_at", field=models.DateTimeField(null=True)),
        migrations.AddField(model_name="stafftoken", name="revoked_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(expire_in_ninety_days, migrations.RunPython.noop),
        migrations.AlterField(model_name="stafftoken", name="expires_at", field=models.DateTimeField()),
    ]
