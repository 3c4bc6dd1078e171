from django.db import migrations, models

# A request the deadline watch escalated before this field existed missed its deadline too: the
# deadline it missed is its due date, unless staff extended it afterwards (as they could then), in
# which case the escalation's time is the nearest known bound.
BACKFILL = """
UPDATE dsar_request AS r SET overdue_since = LEAST(r.due_at, n.sent_at)
FROM dsar_deadlinenotice AS n
WHERE n.request_id = r.id AND n.kind = 'overdue' AND r.overdue_since IS NULL
"""


class Migration(migrations.Migration):
    """A request keeps the fact that it passed its deadline unanswered; a deadline notice may also
    be a lapse email's. A new nullable column and a help text: the release before reads and writes
    its rows as it did."""

    dependencies = [
        ("dsar", "0014_sweeps_count_deaths"),
    ]

    operations = [
        migrations.AddField(
            model_name="request",
            name="overdue_since",
            field=models.DateTimeField(blank=True, null=True, help_text="The deadline it passed unanswered, found by the "
                                       "deadline watch; kept whatever happens after."),
        ),
        migrations.AlterField(
            model_name="deadlinenotice",
            name="kind",
            field=models.CharField(max_length=16,
                                   help_text="'7d', '2d' (days before due), 'overdue', or 'lapsed' (never verified)."),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
