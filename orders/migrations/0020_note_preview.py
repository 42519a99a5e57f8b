"""Keep each note page's preview image (orders/previews.py): a new table, additive, which
containers of the previous release never touch."""

import django.db.models.deletion
import django.utils.timezone
import hcoint.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0019_worklist_digest'),
    ]

    operations = [
        migrations.CreateModel(
            name='NotePreview',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('page_index', models.PositiveIntegerField(help_text='0 is the first page.')),
                ('png', hcoint.fields.EncryptedBinaryField()),
                ('problem', models.CharField(blank=True, help_text='Why the page could not be rendered (a PreviewError reason).', max_length=20)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('note', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='previews', to='orders.clinicalnote')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('note', 'page_index'), name='note_preview_one_per_page')],
            },
        ),
    ]
