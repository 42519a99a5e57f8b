"""The worklist's per-partner expectation and the digest email's claim row.

Additive: `note_due_days` has a database default, so the previous release's containers
keep inserting partners while this one migrates; the partner table holds a handful of rows.
`DigestRun` is a new, empty table (orders/digest.py creates its one row on first use).
"""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0018_field_encryption'),
    ]

    operations = [
        migrations.CreateModel(
            name='DigestRun',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=40, unique=True)),
                ('period_start', models.DateTimeField(blank=True, null=True)),
                ('sent_at', models.DateTimeField(blank=True, null=True)),
                ('recipients', models.PositiveIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name='partner',
            name='note_due_days',
            field=models.PositiveSmallIntegerField(db_default=14, default=14, help_text='An order still awaiting a note this many days after it arrived is overdue.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(365)], verbose_name='note due within (days)'),
        ),
    ]
