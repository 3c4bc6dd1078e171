from django.db import migrations, models


class Migration(migrations.Migration):
    """A completed access request keeps what its export showed past the retention its category
    promises. A new nullable column: the release before reads and writes its rows as it did."""

    dependencies = [
        ("dsar", "0021_export_review"),
    ]

    operations = [
        migrations.AddField(
            model_name="request",
            name="retention_finding",
            field=models.JSONField(blank=True, null=True, help_text="What the export showed past the retention its category "
                                   "promises, per system and category; written when it completed."),
        ),
    ]
