from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dsar', '0024_request_time_zone_language'),
    ]

    operations = [
        migrations.AddField(
            model_name='request',
            name='date_from',
            field=models.DateField(blank=True, help_text='The first day of the period the person asked their data from, in their time zone; none: from the beginning.', null=True),
        ),
        migrations.AddField(
            model_name='request',
            name='date_to',
            field=models.DateField(blank=True, help_text='The last day of that period; none: up to now.', null=True),
        ),
        migrations.AddField(
            model_name='request',
            name='part_size',
            field=models.BigIntegerField(blank=True, help_text='The most bytes one part of the export should hold (it comes as several zips); none: one zip.', null=True),
        ),
        migrations.AddField(
            model_name='export',
            name='parts',
            field=models.JSONField(blank=True, db_default=[], default=list, help_text='The further zips of an export in parts, after the first (`path`, `bytes`, `sha256` above): [{"path", "bytes", "sha256"}]; empty: one zip.'),
        ),
    ]
