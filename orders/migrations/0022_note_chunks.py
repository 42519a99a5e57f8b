"""Note PDFs move into pieces (`NoteChunk`, orders/note_content.py): one row per MiB, each
encrypted on its own, so neither the web process nor the worker ever holds a whole note
in memory (docs/performance.md, "Large notes").

The new table only; the notes stored before it are copied into pieces by migration 0024,
a migration of its own so that a copy stopped halfway can simply be run again.
`ClinicalNote.content` is left as it is: the previous release's containers read it while
this one is deployed, and the new code reads a note without pieces from it.
"""

import django.db.models.deletion
from django.db import migrations, models

import hcoint.fields


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0021_upload_batch"),
    ]

    operations = [
        migrations.AlterField(
            model_name="clinicalnote",
            name="content",
            field=hcoint.fields.EncryptedBinaryField(blank=True, default=b""),
        ),
        migrations.CreateModel(
            name="NoteChunk",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("index", models.PositiveIntegerField(help_text="0 is the first piece.")),
                ("data", hcoint.fields.EncryptedBinaryField()),
                (
                    "note",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="orders.clinicalnote",
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("note", "index"), name="note_chunk_one_per_index")],
            },
        ),
    ]
