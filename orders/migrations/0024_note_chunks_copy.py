"""Each note stored before note pieces (migration 0022) is copied into pieces.

One note per transaction (the migration is not atomic), so the copy is never one long
transaction, and a run stopped halfway resumes where it stopped: notes that already have
pieces are skipped, and this migration is recorded only once every note is copied. It
reads one note at a time (about five times its size in memory, as any read of a whole
`bytea` through psycopg2 does). `ClinicalNote.content` is left as it was, for containers
of the previous release during the deploy (docs/runbook.md, "3.3 Deploy").

Reversed, it puts the pieces of notes stored only in pieces back into `content`, where the
previous release reads them, before 0022's reversal drops the pieces' table: a rollback
loses no note. Roll back with web and worker stopped, so no note is stored meanwhile.
"""

from django.db import migrations, transaction

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
        ("orders", "0023_usage_rollup"),
    ]

    operations = [
        migrations.RunPython(copy_into_pieces, join_pieces, elidable=True),
    ]
