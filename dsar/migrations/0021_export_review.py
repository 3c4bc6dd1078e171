from django.db import migrations, models


class Migration(migrations.Migration):
    """An export counts what may be other people's data, held for review, and keeps what the review
    decided. The count has a database default, so the release before, whose INSERTs name neither
    column, still completes requests while this applies; PostgreSQL adds a column with a constant
    default without rewriting the table."""

    dependencies = [
        ("dsar", "0020_request_referral"),
    ]

    operations = [
        migrations.AddField(
            model_name="export",
            name="others",
            field=models.PositiveIntegerField(db_default=0, default=0,
                                              help_text="Records and files that may be other people's data (GDPR Art. 15(4)): the export "
                                                        "waits for staff to review them before release."),
        ),
        migrations.AddField(
            model_name="export",
            name="review",
            field=models.JSONField(blank=True, null=True,
                                   help_text='What staff decided for each of them, and who and when: {"decisions": [{"item", "action", '
                                             '"fields", "reason", "reason_text"}], "by", "at"} (dsar/exports/review.py).'),
        ),
    ]
