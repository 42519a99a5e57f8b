"""A note's PDF, written and read a piece at a time (`NoteChunk` rows).

    size, sha256 = measure(source)   # bytes, or a binary file (read through, then put back)
    store(note, source)              # in the caller's transaction, right after the note's insert
    for piece in pieces(note): ...   # checked against the note's size and SHA-256 as it goes
    data = read(note)                # the whole PDF at once, for the page renderer
    file_source(note)                # a redox.multipart.FileSource, for the Redox upload

Why pieces: psycopg2 has no binary parameters. It writes a `bytea` as hex inside the SQL
text and reads one back as hex text, so a 25 MB note in one column cost the web process
about eleven times the file on upload and the worker four to five times on delivery
(docs/performance.md, "Large notes"). A piece of CHUNK_BYTES costs a few times its own size,
whatever the size of the note; the upload never holds the whole file (orders/pdf/ hands it
to the checker as a file and takes the clean copy back as one), and the delivery streams
the pieces to Redox.

Each piece is encrypted on its own (hcoint/fields.py). Reading checks that the pieces are
all there, in order, and add up to the note's size and SHA-256: a missing, reordered or
swapped piece raises NoteContentError before the last piece is given out, so a Redox
upload or a download fed from `pieces` is cut short rather than completed wrong.

Notes stored before pieces keep their PDF in `ClinicalNote.content` (see the model); they
are read from there when they have no pieces.
"""

import hashlib

from orders.models import ClinicalNote, NoteChunk
from redox.multipart import FileSource

CHUNK_BYTES = 1024 * 1024


class NoteContentError(Exception):
    """A note's stored pieces do not make up the PDF it describes (altered or incomplete storage)."""

    log_safe_message = True  # names a note id only


def source_pieces(source, size=None):
    """`source` (bytes-like, or a binary file from its current position) in pieces of at most
    `size` (CHUNK_BYTES by default)."""
    size = size or CHUNK_BYTES
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), size):
            yield view[start : start + size]
        return
    while piece := source.read(size):
        yield piece


def measure(source):
    """(size, SHA-256 hex) of `source`; a file is read to the end and put back where it was."""
    start = None if isinstance(source, bytes | bytearray | memoryview) else source.tell()
    digest = hashlib.sha256()
    size = 0
    for piece in source_pieces(source):
        digest.update(piece)
        size += len(piece)
    if start is not None:
        source.seek(start)
    return size, digest.hexdigest()


def store(note, source):
    """Write `source` as `note`'s PDF, one INSERT per piece. Call it in the transaction that
    inserts the note, so a note never exists without its PDF."""
    for index, piece in enumerate(source_pieces(source)):
        NoteChunk.objects.create(note=note, index=index, data=piece)


def pieces(note):
    """The note's PDF in pieces, one query each; raises NoteContentError, at the latest in
    place of the last piece, when they do not add up to the note's size and SHA-256. A note
    stored before pieces (none yet copied by migration 0024) comes from its old column, whole."""
    digest = hashlib.sha256()
    size = index = 0
    while size < note.size:
        data = NoteChunk.objects.filter(note_id=note.pk, index=index).values_list("data", flat=True).first()
        if data is None and index == 0:  # stored before pieces
            data = ClinicalNote.objects.values_list("content", flat=True).get(pk=note.pk)
        if not data:
            raise NoteContentError(f"Note {note.pk}: piece {index} is missing.")
        digest.update(data)
        size += len(data)
        index += 1
        if size > note.size:
            raise NoteContentError(f"Note {note.pk}: its stored pieces are longer than the note.")
        # Checked before the last piece goes out: a reader that streams (a download, the
        # Redox upload) then stops short instead of completing a wrong file.
        if size == note.size and digest.hexdigest() != note.sha256:
            raise NoteContentError(f"Note {note.pk}: its stored pieces do not match its SHA-256.")
        yield data


def read(note):
    """The whole PDF as a bytearray, built in one allocation of the note's size."""
    return file_source(note).read_all()


def file_source(note):
    """The note's PDF as a FileSource: its size, and its pieces read afresh for each attempt."""
    return FileSource(size=note.size, open=lambda: pieces(note))
