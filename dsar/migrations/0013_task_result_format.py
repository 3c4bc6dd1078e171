from django.db import migrations, models


class Migration(migrations.Migration):
    """The format of a task row's result. Backward compatible with the release before, which keeps
    running while this applies: the column has a database default, so that release's INSERTs, which
    do not name it, still work, and every row it wrote or writes reads as format 1, its format.
    PostgreSQL adds a column with a constant default without rewriting the table."""

    dependencies = [
        ("dsar", "0012_audit_keyed"),
    ]

    operations = [
        migrations.AddField(
            model_name="connectortask",
            name="result_format",
            field=models.PositiveSmallIntegerField(db_default=1, help_text="Format of counts, receipt, identities (dsar/formats.py)."),
        ),
    ]
