import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Staff may ask the person a question: a new status, awaiting the person's answer, and a table
    of questions and answers. Choices live in Django only and the table is new: the release before
    reads and writes its rows as it did."""

    dependencies = [
        ("dsar", "0015_request_overdue_since"),
    ]

    operations = [
        migrations.AlterField(
            model_name="request",
            name="status",
            field=models.CharField(
                choices=[("unverified", "Unverified"), ("pending_review", "Pending Review"), ("processing", "Processing"),
                         ("completed", "Completed"), ("failed", "Failed"), ("denied", "Denied"), ("canceled", "Canceled"),
                         ("expired", "Expired"), ("referred", "Referred"), ("awaiting_subject", "Awaiting Subject")],
                default="unverified", max_length=16),
        ),
        migrations.CreateModel(
            name="RequestQuestion",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("purpose", models.CharField(choices=[("identity", "Who is asking"), ("scope", "What the request covers")], max_length=16)),
                ("text", models.TextField()),
                ("asked_by", models.CharField(help_text="'staff:<username>', as the audit trail names them.", max_length=160)),
                ("asked_at", models.DateTimeField()),
                ("answer", models.TextField(blank=True)),
                ("answer_file", models.CharField(blank=True, help_text="The file's path in the storage; empty when none came.", max_length=300)),
                ("answer_content_type", models.CharField(blank=True, help_text="Read from the file's first bytes, not from what the sender said.",
                                                         max_length=100)),
                ("answered_at", models.DateTimeField(blank=True, null=True)),
                ("reminders_sent", models.PositiveSmallIntegerField(default=0, help_text="Reminders emailed while it waited for an answer.")),
                ("request", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="questions", to="dsar.request")),
            ],
            options={
                "constraints": [models.UniqueConstraint(condition=models.Q(("answered_at__isnull", True)), fields=("request",),
                                                        name="one_open_question_per_request")],
            },
        ),
    ]
