from django.db import migrations, models


class Migration(migrations.Migration):
    """A request keeps what was referred to the organisation managing the account: its contact, and
    the systems whose data it controls. Both columns have a database default, so the release
    before, whose INSERTs name neither, still files requests while this applies; PostgreSQL adds a
    column with a constant default without rewriting the table."""

    dependencies = [
        ("dsar", "0019_recipient_notification"),
    ]

    operations = [
        migrations.AlterField(
            model_name="request",
            name="referred_to",
            field=models.CharField(blank=True, max_length=200, help_text="The organisation that manages the account, when part or "
                                                                         "all of the request was referred to it at verification."),
        ),
        migrations.AddField(
            model_name="request",
            name="referred_contact",
            field=models.TextField(blank=True, db_default="", default="",
                                   help_text="How to reach that organisation about privacy requests, as the systems hold it."),
        ),
        migrations.AddField(
            model_name="request",
            name="referred_systems",
            field=models.JSONField(blank=True, db_default=[], default=list,
                                   help_text='The systems whose data of this account the organisation controls, left to it: '
                                             '[{"system": name, "categories": [the requested ids it can hold]}]; they get no '
                                             'task.'),
        ),
    ]
