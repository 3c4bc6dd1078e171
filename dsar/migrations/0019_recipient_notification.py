import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):
    """The recipients of a person's data are told of an erasure: one job row a recipient. A new table
    the release before neither reads nor writes; a deletion it completes tells no one, as it did."""

    dependencies = [
        ('dsar', '0018_request_refusals'),
    ]

    operations = [
        migrations.CreateModel(
            name='RecipientNotification',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, help_text='Also the event id a webhook carries: the same on every attempt.', primary_key=True, serialize=False)),
                ('system', models.CharField(max_length=40)),
                ('recipient', models.CharField(help_text="The recipient's name, as its system file declares it.", max_length=200)),
                ('method', models.CharField(choices=[('email', 'Email'), ('webhook', 'Webhook'), ('manual', 'Manual')], max_length=16)),
                ('categories', models.JSONField(default=list, help_text='What the system erased of what the recipient receives.')),
                ('identities', models.JSONField(blank=True, default=dict, help_text='name -> values the recipient finds the person by; emptied once they are told.')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('sent', 'Sent'), ('failed', 'Failed'), ('with_staff', 'With staff'), ('done', 'Done')], max_length=16)),
                ('attempts', models.PositiveSmallIntegerField(default=0, help_text='Sends that were tried.')),
                ('not_before', models.DateTimeField(help_text='Backoff: not to send earlier.')),
                ('last_error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('done_at', models.DateTimeField(blank=True, null=True)),
                ('done_by', models.CharField(blank=True, help_text="'staff:<username>' who told them by hand.", max_length=160)),
                ('request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='recipient_notifications', to='dsar.request')),
            ],
            options={
                'indexes': [models.Index(fields=['status', 'not_before'], name='dsar_recipi_status_a147ba_idx')],
                'constraints': [models.UniqueConstraint(fields=('request', 'system', 'recipient'), name='one_notification_per_recipient')],
            },
        ),
    ]
