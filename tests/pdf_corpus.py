"""PDFs built as bytes for the upload-gate tests: hand-written PDF syntax with a computed
cross-reference table, object streams, incremental updates, and files written by pikepdf
and by pypdf.

No binary fixtures: every file is made here, so each test shows exactly what it holds.
"""

import io
import re
import struct
import zlib

import pikepdf
from pypdf import PdfWriter

TEXT = b"BT /F1 12 Tf 72 720 Td (Discharge summary) Tj ET"
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def stream(content, extra=b""):
    """An object body holding a stream of `content`."""
    return b"<< /Length %d %s>>\nstream\n" % (len(content), extra) + content + b"\nendstream"


def flate(content, extra=b""):
    packed = zlib.compress(content)
    return stream(packed, b"/Filter /FlateDecode " + extra)


def raw_pdf(objects, *, root=1, trailer_extra=b"", version=b"1.7"):
    """A PDF of `objects` [(number, body)], written in that order, with a correct xref."""
    out = bytearray(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number, body in objects:
        offsets.setdefault(number, len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    out += _xref(offsets, len(out), b"/Root %d 0 R %s" % (root, trailer_extra))
    return bytes(out)


def _xref(offsets, start, trailer, size=0):
    size = max(size, max(offsets) + 1)
    table = bytearray(b"xref\n0 1\n0000000000 65535 f \n")
    for number in sorted(offsets):
        table += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    return bytes(table) + b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer, start)


def page_objects(pages=1, *, page_extra=b"", catalog_extra=b"", content=TEXT, resources=b""):
    """Catalog 1, page tree 2, font 3, then each page and its content (4, 5; 6, 7; ...)."""
    kids = b" ".join(b"%d 0 R" % (4 + 2 * index) for index in range(pages))
    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b">>"),
        (2, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % pages),
        (3, FONT),
    ]
    for index in range(pages):
        number = 4 + 2 * index
        objects.append(
            (
                number,
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 3 0 R >> %s>> " % (number + 1, resources) + page_extra + b">>",
            )
        )
        objects.append((number + 1, flate(content)))
    return objects


def basic(*, page_extra=b"", catalog_extra=b"", extra=(), pages=1, content=TEXT, resources=b"", trailer_extra=b""):
    """A plain text note; `extra` objects are numbered from 20 by convention."""
    objects = page_objects(
        pages, page_extra=page_extra, catalog_extra=catalog_extra, content=content, resources=resources
    )
    return raw_pdf([*objects, *extra], trailer_extra=trailer_extra)


def link(action, rect=b"[72 600 300 620]"):
    """A link annotation object body whose /A is `action` (PDF syntax)."""
    return b"<< /Type /Annot /Subtype /Link /Rect " + rect + b" /A " + action + b" >>"


def with_annotation(body, extra_objects=(), **kwargs):
    """The basic note with one annotation, object 20, on its page."""
    return basic(page_extra=b"/Annots [20 0 R]", extra=[(20, body), *extra_objects], **kwargs)


def with_link(action):
    return with_annotation(link(action))


def append_update(data, objects, *, root=1):
    """An incremental update: `objects` appended after `data` with an xref section whose
    /Prev points at the previous one, as an editor saves changes."""
    previous = int(data.rsplit(b"startxref", 1)[1].split()[0])
    out = bytearray(data)
    offsets = {}
    for number, body in objects:
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    size = int(re.findall(rb"/Size (\d+)", data)[-1])
    trailer = b"/Root %d 0 R /Prev %d" % (root, previous)
    return bytes(out + _xref(offsets, len(out), trailer, size))


def append_deletion(data, number, *, root=1):
    """An incremental update that only deletes object `number` (a free xref entry)."""
    previous = int(data.rsplit(b"startxref", 1)[1].split()[0])
    size = int(re.findall(rb"/Size (\d+)", data)[-1])
    xref = b"xref\n0 1\n0000000000 65535 f \n%d 1\n0000000000 00001 f \n" % number
    trailer = b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        root,
        previous,
        len(data),
    )
    return data + xref + trailer


def in_object_stream(objects, *, root=2):
    """A PDF 1.5 file whose `objects` [(number, body)] all sit in one compressed object
    stream (object 1) behind an xref stream, so none of their names appear in the bytes."""
    header, body = b"", b""
    for number, source in objects:
        header += b"%d %d " % (number, len(body))
        body += source + b"\n"
    packed = zlib.compress(header + body)
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    stream_offset = out.tell()
    out.write(
        b"1 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\nstream\n"
        % (len(objects), len(header), len(packed))
    )
    out.write(packed + b"\nendstream\nendobj\n")
    xref_offset = out.tell()
    xref_number = max(number for number, _ in objects) + 1
    # Xref stream rows: type 0 (free), 1 (at a byte offset), 2 (inside object stream 1).
    rows = {0: struct.pack(">BIH", 0, 0, 65535), 1: struct.pack(">BIH", 1, stream_offset, 0)}
    for index, (number, _) in enumerate(objects):
        rows[number] = struct.pack(">BIH", 2, 1, index)
    rows[xref_number] = struct.pack(">BIH", 1, xref_offset, 0)
    table = b"".join(rows.get(number, struct.pack(">BIH", 0, 0, 0)) for number in range(xref_number + 1))
    out.write(
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root %d 0 R /Length %d >>\nstream\n"
        % (xref_number, xref_number + 1, root, len(table))
    )
    out.write(table + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_offset)
    return out.getvalue()


def note_in_object_stream(catalog_extra=b"", extra=()):
    return in_object_stream(
        [
            (2, b"<< /Type /Catalog /Pages 3 0 R " + catalog_extra + b">>"),
            (3, b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>"),
            (4, b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] /Resources << >> >>"),
            *extra,
        ]
    )


def zeros_deflated(size):
    """A valid zlib stream of `size` zero bytes (a multiple of 64 KiB), made in milliseconds.

    After a full flush the compressor forgets what came before, so the bytes for each
    further 64 KiB of zeros are the same and can be repeated; the stream then ends with an
    empty final block and the Adler-32 of `size` zeros (a = 1, b = size mod 65521).
    """
    chunk = 1 << 16
    assert size % chunk == 0
    packer = zlib.compressobj(9)
    first = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(bytes(chunk)) + packer.flush(zlib.Z_FULL_FLUSH)
    assert first[2:] == again
    return first + again * (size // chunk - 1) + b"\x03\x00" + struct.pack(">I", ((size % 65521) << 16) | 1)


def pikepdf_bytes(build=None, *, pages=1, **save):
    """A note written by pikepdf (qpdf); `build(pdf)` may change it before saving."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
    )
    for index in range(pages):
        pdf.add_blank_page(page_size=(612, 792))
        page = pdf.pages[-1]
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(b"BT /F1 12 Tf 72 720 Td (Page %d) Tj ET" % (index + 1))
    if build:
        build(pdf)
    out = io.BytesIO()
    pdf.save(out, **save)
    return out.getvalue()


def pdf_bytes(build=None, pages=1):
    """A note written by pypdf; `build(writer)` may add whatever the test is about."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    if build:
        build(writer)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
