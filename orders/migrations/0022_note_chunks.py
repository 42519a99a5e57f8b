"""Note PDFs move into pieces (`NoteChunk`, orders/note_content.py): one row per MiB, each
encrypted on its own, so neither the web process nor the worker ever holds a whole note
in memory (docs/performance.md, "Large notes").

Each stored note's PDF is copied into pieces here, one note per transaction, so the copy
is never one long transaction, and a run stopped halfway resumes where it stopped (notes
that already have pieces are skipped). `ClinicalNote.content` is left as it was: containers
of the previous release keep reading and sending notes from it while this release is
deployed, and the new code reads a note without pieces from it. The copy reads one note
at a time (about five times its size in memory, as any read of a whole `bytea` through
psycopg2 does). Reversed, it puts the pieces of notes stored only in pieces back into
`content`, so a rollback loses no note.
"""

import django.db.models.deletion
from django.db import migrations, models, transaction

import hcoint.fields

PIECE_BYTES = 1024 * 1024  # orders.note_content.CHUNK_BYTES when this was written


def copy_into_pieces(apps, schema_editor):
    ClinicalNote = apps.get_model("orders", "ClinicalNote")
    NoteChunk = apps.get_model("orders", "NoteChunk")
    pending = (
        ClinicalNote.objects.filter(content_purged_at__isnull=True, chunks__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for pk in list(pending):
        with transaction.atomic():
            content = ClinicalNote.objects.values_list("content", flat=True).get(pk=pk)
            view = memoryview(content)
            for index, start in enumerate(range(0, len(view), PIECE_BYTES)):
                NoteChunk.objects.create(note_id=pk, index=index, data=view[start : start + PIECE_BYTES])


def join_pieces(apps, schema_editor):
    """Going back: notes stored only in pieces get their PDF back in `content`, where the
    previous release reads it, before the pieces' table is dropped."""
    ClinicalNote = apps.get_model("orders", "ClinicalNote")
    NoteChunk = apps.get_model("orders", "NoteChunk")
    for note in ClinicalNote.objects.filter(content=b"", chunks__isnull=False).distinct().only("pk"):
        with transaction.atomic():
            pieces = NoteChunk.objects.filter(note_id=note.pk).order_by("index").values_list("data", flat=True)
            note.content = b"".join(bytes(piece) for piece in pieces)
            note.save(update_fields=["content"])


class Migration(migrations.Migration):
    atomic = False  # one transaction per note; see above

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
                        on_delete=django.db.models.deletion.CASCADE, related_name="chunks", to="orders.clinicalnote"
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("note", "index"), name="note_chunk_one_per_index")],
            },
        ),
        migrations.RunPython(copy_into_pieces, join_pieces, elidable=True),
    ]
