"""The final step becomes a job row of its own (FinalStep) instead of three columns on the request.

A request whose final step was queued or running when this runs gets its row, in the same state
with its lease and attempts, so the sweeper and the workers carry it on. Audit entries may now be
about staff management rather than a request.
"""

import django.db.models.deletion
from django.db import migrations, models


def final_steps_carry_over(apps, schema_editor):
    Request, FinalStep = apps.get_model("dsar", "Request"), apps.get_model("dsar", "FinalStep")
    in_flight = Request.objects.filter(finalize_state__in=["queued", "running"]).values_list(
        "pk", "finalize_state", "finalize_lease_until", "finalize_attempts")
    FinalStep.objects.bulk_create(
        FinalStep(request_id=pk, status=state, lease_until=lease_until, attempts=attempts)
        for pk, state, lease_until, attempts in in_flight.iterator()
    )


def final_steps_carry_back(apps, schema_editor):
    Request, FinalStep = apps.get_model("dsar", "Request"), apps.get_model("dsar", "FinalStep")
    for step in FinalStep.objects.filter(status__in=["queued", "running"]).iterator():
        Request.objects.filter(pk=step.request_id).update(
            finalize_state=step.status, finalize_lease_until=step.lease_until, finalize_attempts=step.attempts)


class Migration(migrations.Migration):

    dependencies = [
        ('dsar', '0005_outgoing_email'),
    ]

    operations = [
        migrations.CreateModel(
            name='FinalStep',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='queued', max_length=16)),
                ('attempts', models.PositiveSmallIntegerField(default=0, help_text='Claims by a worker, redeliveries included.')),
                ('sweeps', models.PositiveSmallIntegerField(default=0, help_text='Times the sweeper revived it after a lost worker or message.')),
                ('claimed_by', models.CharField(blank=True, help_text='host:pid of the worker running it.', max_length=200)),
                ('lease_until', models.DateTimeField(blank=True, null=True)),
                ('last_error', models.TextField(blank=True)),
                ('last_error_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('request', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='final_step', to='dsar.request')),
            ],
            options={
                'indexes': [models.Index(fields=['status', 'lease_until'], name='dsar_finals_status_a7f239_idx')],
            },
        ),
        migrations.RunPython(final_steps_carry_over, final_steps_carry_back),
        migrations.RemoveField(
            model_name='request',
            name='finalize_attempts',
        ),
        migrations.RemoveField(
            model_name='request',
            name='finalize_lease_until',
        ),
        migrations.RemoveField(
            model_name='request',
            name='finalize_state',
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='request',
            field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='audit', to='dsar.request'),
        ),
    ]
