from django.db import migrations, models


class Migration(migrations.Migration):
    """`sweeps` counts only revivals after a worker died under the row; waiting in the queue no
    longer counts against a request. Help text only: no SQL."""

    dependencies = [
        ("dsar", "0013_task_result_format"),
    ]

    operations = [
        migrations.AlterField(
            model_name="connectortask",
            name="sweeps",
            field=models.PositiveSmallIntegerField(default=0, help_text="Times the sweeper revived it after its worker died."),
        ),
        migrations.AlterField(
            model_name="finalstep",
            name="sweeps",
            field=models.PositiveSmallIntegerField(default=0, help_text="Times the sweeper revived it after its worker died."),
        ),
    ]
