from django.db import migrations, models


class Migration(migrations.Migration):
    """A request whose subject may be a child keeps the lowest age a system shows and where it came
    from, and whose authority the reviewer confirmed at approval. The age is nullable and the texts
    have a database default, so the release before, whose INSERTs name none of them, still files
    requests while this applies."""

    dependencies = [
        ("dsar", "0022_request_retention_finding"),
    ]

    operations = [
        migrations.AddField(
            model_name="request",
            name="minor_age",
            field=models.PositiveSmallIntegerField(blank=True, null=True,
                                                   help_text="The lowest age a system shows the subject may be, when under "
                                                             "the age the request's law protects as a child's."),
        ),
        migrations.AddField(
            model_name="request",
            name="minor_age_source",
            field=models.CharField(blank=True, db_default="", default="", max_length=200,
                                   help_text="Where that age came from: the system, table and column."),
        ),
        migrations.AddField(
            model_name="request",
            name="authority_confirmed",
            field=models.CharField(blank=True, choices=[("subject", "The child themselves"),
                                                        ("parent_or_guardian", "A parent or guardian")],
                                   db_default="", default="", max_length=24,
                                   help_text="Whose authority the reviewer confirmed when approving a child's request."),
        ),
    ]
