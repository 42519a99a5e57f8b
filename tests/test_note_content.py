"""A note's PDF is stored and read in pieces (orders/note_content.py), each encrypted on its
own, and checked against the note's size and SHA-256 as it is read."""

import hashlib
import importlib
from pathlib import Path

import pytest
from django.apps import apps
from django.urls import reverse

from hcoint.encryption import MAGIC
from orders import note_content, notes
from orders.models import ClinicalNote, NoteChunk
from orders.pdf import sandbox
from tests.factories import SAMPLE_PDF, ClinicalNoteFactory, OrderFactory
from tests.pdf_text import text_pdf
from tests.test_field_encryption import store_raw, stored

pytestmark = pytest.mark.django_db

PIECE = 100  # bytes, for these tests: the sample PDF is several pieces


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(note_content, "CHUNK_BYTES", PIECE)


def test_a_note_is_stored_as_encrypted_pieces_and_reads_back_whole(small_pieces, uploader):
    note = notes.note_upload(order=OrderFactory(), file_name="n.pdf", content=SAMPLE_PDF, page_count=1, user=uploader)
    chunks = list(NoteChunk.objects.filter(note=note).order_by("index"))
    assert [chunk.index for chunk in chunks] == list(range(-(-len(SAMPLE_PDF) // PIECE)))
    for chunk in chunks:
        raw = stored(NoteChunk, "data", chunk.pk)
        assert raw.startswith(MAGIC) and b"%PDF" not in raw
    assert (note.size, note.sha256) == (len(SAMPLE_PDF), hashlib.sha256(SAMPLE_PDF).hexdigest())
    assert bytes(ClinicalNote.objects.get(pk=note.pk).content) == b""  # the old column stays empty
    assert [bytes(piece) for piece in note_content.pieces(note)] == [
        SAMPLE_PDF[start : start + PIECE] for start in range(0, len(SAMPLE_PDF), PIECE)
    ]
    assert note_content.read(note) == SAMPLE_PDF


def test_a_file_is_stored_from_where_it_stands_and_put_back(small_pieces, uploader, tmp_path):
    path = tmp_path / "copy"
    path.write_bytes(b"header\n" + SAMPLE_PDF)
    with path.open("rb") as file:
        file.readline()
        note = notes.note_upload(order=OrderFactory(), file_name="n.pdf", content=file, page_count=1, user=uploader)
    assert note_content.read(note) == SAMPLE_PDF


def test_a_missing_piece_stops_the_reader(small_pieces):
    note = ClinicalNoteFactory()
    NoteChunk.objects.filter(note=note, index=2).delete()
    with pytest.raises(note_content.NoteContentError, match="piece 2 is missing"):
        list(note_content.pieces(note))


def test_pieces_put_back_in_another_order_do_not_read_as_the_note(small_pieces):
    note = ClinicalNoteFactory()
    first, second = NoteChunk.objects.filter(note=note, index__in=[0, 1]).order_by("index")
    NoteChunk.objects.filter(pk=first.pk).update(index=99)
    NoteChunk.objects.filter(pk=second.pk).update(index=0)
    NoteChunk.objects.filter(pk=first.pk).update(index=1)
    with pytest.raises(note_content.NoteContentError, match="SHA-256"):
        note_content.read(note)


def test_a_piece_too_many_bytes_is_refused_before_it_is_given_out(small_pieces):
    note = ClinicalNoteFactory()
    NoteChunk.objects.filter(note=note, index=0).update(data=b"x" * (note.size + 1))
    with pytest.raises(note_content.NoteContentError, match="longer than the note"):
        next(note_content.pieces(note))


def test_a_note_stored_before_pieces_reads_from_its_old_column(small_pieces):
    note = ClinicalNoteFactory()
    NoteChunk.objects.filter(note=note).delete()
    store_raw(ClinicalNote, "content", note.pk, SAMPLE_PDF)
    assert note_content.read(note) == SAMPLE_PDF


def test_the_migration_copies_old_notes_into_pieces_and_back(small_pieces):
    migration = importlib.import_module("orders.migrations.0024_note_chunks_copy")
    old, new = ClinicalNoteFactory(), ClinicalNoteFactory(content=text_pdf(["A newer note"]))
    NoteChunk.objects.filter(note=old).delete()
    store_raw(ClinicalNote, "content", old.pk, SAMPLE_PDF)
    new_pieces = sorted(NoteChunk.objects.filter(note=new).values_list("pk", flat=True))

    migration.copy_into_pieces(apps, None)
    assert note_content.read(old) == SAMPLE_PDF
    assert NoteChunk.objects.filter(note=old).count() == 1  # the migration's own piece size
    assert sorted(NoteChunk.objects.filter(note=new).values_list("pk", flat=True)) == new_pieces  # left alone
    migration.copy_into_pieces(apps, None)  # a second run copies nothing twice
    assert NoteChunk.objects.filter(note=old).count() == 1

    # Going back: the note stored only in pieces gets its bytes in the old column.
    migration.join_pieces(apps, None)
    assert bytes(ClinicalNote.objects.get(pk=new.pk).content) == note_content.read(new)
    assert bytes(ClinicalNote.objects.get(pk=old.pk).content) == SAMPLE_PDF


def test_the_download_streams_the_pieces_with_the_notes_length(small_pieces, client, viewer):
    note = ClinicalNoteFactory()
    client.force_login(viewer)
    response = client.get(reverse("note_download", args=[note.pk]))
    assert response.streaming and response["Content-Length"] == str(len(SAMPLE_PDF))
    assert response.getvalue() == SAMPLE_PDF


def test_a_large_upload_reaches_the_checker_as_its_temporary_file(client, uploader, settings, monkeypatch):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every upload spools to a temporary file
    given = []
    real = sandbox.check_in_child

    def spy(data, limits):
        given.append(data)
        return real(data, limits)

    monkeypatch.setattr(sandbox, "check_in_child", spy)
    order = OrderFactory()
    client.force_login(uploader)
    with open(Path(__file__).parent.parent / "redox" / "samples" / "clinical-note.pdf", "rb") as pdf:
        response = client.post(reverse("upload_note", args=[order.pk]), {"file": pdf})
    note = ClinicalNote.objects.get()
    assert response.status_code == 302
    [data] = given
    assert isinstance(data, Path)  # a path for the child to open, never the bytes
    assert note.original_sha256 == hashlib.sha256(SAMPLE_PDF).hexdigest()
    stored_copy = note_content.read(note)
    assert stored_copy.startswith(b"%PDF-") and note.sha256 == hashlib.sha256(stored_copy).hexdigest()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a not a pdf at all", "This file is not a PDF"),
        (b"%PDF-1.7\n this is no PDF inside", "The PDF is damaged"),
    ],
)
def test_a_refused_upload_from_a_temporary_file_says_why_and_stores_nothing(
    client, uploader, settings, tmp_path, data, message
):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    path = tmp_path / "note.pdf"
    path.write_bytes(data)
    client.force_login(uploader)
    with path.open("rb") as upload:
        response = client.post(reverse("upload_note", args=[OrderFactory().pk]), {"file": upload})
    assert response.status_code == 400 and message in response.content.decode()
    assert not ClinicalNote.objects.exists() and not NoteChunk.objects.exists()


def test_a_stream_of_swapped_pieces_stops_before_its_last_byte(small_pieces, client, viewer):
    """A download streams the pieces with the note's length: the check comes before the last
    piece, so the browser never gets a complete file that is the wrong one."""
    note = ClinicalNoteFactory()
    first, second = NoteChunk.objects.filter(note=note, index__in=[0, 1]).order_by("index")
    NoteChunk.objects.filter(pk=first.pk).update(data=bytes(second.data))
    NoteChunk.objects.filter(pk=second.pk).update(data=bytes(first.data))
    given = b""
    with pytest.raises(note_content.NoteContentError, match="SHA-256"):
        for piece in note_content.pieces(note):
            given += bytes(piece)
    assert len(given) < note.size
    client.force_login(viewer)
    response = client.get(reverse("note_download", args=[note.pk]))
    with pytest.raises(note_content.NoteContentError):
        b"".join(response.streaming_content)
