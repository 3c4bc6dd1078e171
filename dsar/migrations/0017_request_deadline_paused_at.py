from django.db import migrations, models


class Migration(migrations.Migration):
    """A request keeps since when its deadline stands still while the person is asked a question.
    A new nullable column: the release before reads and writes its rows as it did."""

    dependencies = [
        ("dsar", "0016_request_questions"),
    ]

    operations = [
        migrations.AddField(
            model_name="request",
            name="deadline_paused_at",
            field=models.DateTimeField(blank=True, null=True, help_text="Since when the deadline stands still: the "
                                       "person was asked a question during which the request's law stops the clock."),
        ),
    ]
