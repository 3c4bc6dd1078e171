from django.db import migrations, models


class Migration(migrations.Migration):
    """A request keeps what staff refused of it: parts at approval, or the law's ground of a whole
    denial. Both columns have a database default, so the release before, whose INSERTs name
    neither, still files requests while this applies; PostgreSQL adds a column with a constant
    default without rewriting the table."""

    dependencies = [
        ("dsar", "0017_request_deadline_paused_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="request",
            name="denial_ground",
            field=models.CharField(blank=True, choices=[("", "None: an ordinary refusal"),
                                                        ("manifestly_unfounded", "Manifestly unfounded"),
                                                        ("excessive", "Excessive, for instance repetitive")],
                                   db_default="", default="", max_length=24,
                                   help_text="The ground of a denial, when the law's (manifestly unfounded, excessive)."),
        ),
        migrations.AddField(
            model_name="request",
            name="refusals",
            field=models.JSONField(blank=True, db_default=[], default=list,
                                   help_text='The parts staff refused at approval: [{"category": id} or {"system": name}, with '
                                             '"reason"]; taken out of what is gathered or erased.'),
        ),
    ]
