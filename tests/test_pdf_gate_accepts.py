"""Ordinary notes the upload gate accepts, and the clean copy made of each.

For every accepted file, the upload and its rebuilt copy both open in pypdf and pikepdf,
the copy has the same pages, and it holds no action, script, form or attachment.
"""

import hashlib
import io
import zlib

import pikepdf
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from orders.pdf.graph import NAME_REASONS
from orders.pdf.sandbox import check_and_rebuild
from tests.conftest import sample_bytes
from tests.pdf_corpus import (
    FONT,
    TEXT,
    append_deletion,
    append_update,
    basic,
    flate,
    pdf_bytes,
    pikepdf_bytes,
    raw_pdf,
    stream,
)
from tests.test_pdf_gate_refuses import LIMITS

# What a rebuilt copy may hold outside page content: nothing that acts.
FORBIDDEN_IN_COPY = {*NAME_REASONS, "/OpenAction", "/AcroForm", "/Names", "/Outlines", "/Dests", "/Widget", "/Next"}


def scanned_page():
    """One page that is only a JPEG image, as a scanner writes it."""
    picture = io.BytesIO()
    Image.new("L", (32, 32), color=200).save(picture, format="JPEG")

    def build(pdf):
        image = pdf.make_stream(
            picture.getvalue(),
            Type=pikepdf.Name.XObject,
            Subtype=pikepdf.Name.Image,
            Width=32,
            Height=32,
            ColorSpace=pikepdf.Name.DeviceGray,
            BitsPerComponent=8,
            Filter=pikepdf.Name.DCTDecode,
        )
        page = pdf.pages[0]
        page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
        page.obj.Contents = pdf.make_stream(b"q 612 0 0 792 0 0 cm /Im0 Do Q")

    return pikepdf_bytes(build)


def inherited_attributes():
    """Page size, rotation and fonts set once on the page tree, as many writers do."""
    return raw_pdf(
        [
            (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
            (
                2,
                b"<< /Type /Pages /Kids [4 0 R] /Count 1 /MediaBox [0 0 612 792] /Rotate 90 "
                b"/Resources << /Font << /F1 3 0 R >> >> >>",
            ),
            (3, FONT),
            (4, b"<< /Type /Page /Parent 2 0 R /Contents 5 0 R >>"),
            (5, flate(TEXT)),
        ]
    )


def pillow_scan():
    """Two scanned pages as Pillow writes them (one image per page)."""
    out = io.BytesIO()
    first, second = Image.new("RGB", (200, 300), "white"), Image.new("RGB", (200, 300), "gray")
    first.save(out, format="PDF", save_all=True, append_images=[second])
    return out.getvalue()


def pdfa_looking():
    """XMP metadata and an output intent, as PDF/A writers add them."""

    def build(pdf):
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["dc:title"] = "Discharge summary"
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
        profile = pdf.make_stream(b"not a real ICC profile", N=3)
        pdf.Root.OutputIntents = pikepdf.Array(
            [
                pikepdf.Dictionary(
                    Type=pikepdf.Name.OutputIntent,
                    S=pikepdf.Name.GTS_PDFA1,
                    OutputConditionIdentifier=pikepdf.String("sRGB"),
                    DestOutputProfile=profile,
                )
            ]
        )

    return pikepdf_bytes(build)


def fillable_looking():
    """Boxes and lines drawn in the content: looks like a form, has no form."""
    content = b"BT /F1 12 Tf 72 720 Td (Name:) Tj ET 130 715 m 400 715 l S 72 600 200 40 re S"
    return basic(content=content)


def internal_links():
    """Two pages; a link by /Dest and one by a /GoTo action, both to page two."""
    return basic(
        pages=2,
        page_extra=b"/Annots [20 0 R 21 0 R]",
        extra=[
            (20, b"<< /Type /Annot /Subtype /Link /Rect [72 600 200 620] /Dest [6 0 R /Fit] >>"),
            (21, b"<< /Type /Annot /Subtype /Link /Rect [72 560 200 580] /A << /S /GoTo /D [6 0 R /XYZ 0 792 0] >> >>"),
        ],
    )


def outline():
    return basic(
        pages=2,
        catalog_extra=b"/Outlines 20 0 R /PageMode /UseOutlines",
        extra=[
            (20, b"<< /Type /Outlines /First 21 0 R /Last 22 0 R /Count 2 >>"),
            (21, b"<< /Title (Summary) /Parent 20 0 R /Next 22 0 R /Dest [4 0 R /Fit] >>"),
            (22, b"<< /Title (Medications) /Parent 20 0 R /Prev 21 0 R /Dest [6 0 R /Fit] >>"),
        ],
    )


def web_link():
    return basic(
        page_extra=b"/Annots [20 0 R]",
        extra=[
            (
                20,
                b"<< /Type /Annot /Subtype /Link /Rect [72 600 300 620] "
                b"/A << /S /URI /URI (https://hospital.example/) >> >>",
            )
        ],
    )


def filled_form():
    """A text field with a value and its appearance: the value must survive in the copy."""
    appearance = stream(
        b"BT /F1 10 Tf 2 4 Td (Jane Roe) Tj ET",
        b"/Type /XObject /Subtype /Form /BBox [0 0 200 20] /Resources << /Font << /F1 3 0 R >> >>",
    )
    return basic(
        catalog_extra=b"/AcroForm << /Fields [20 0 R] >>",
        page_extra=b"/Annots [20 0 R]",
        extra=[
            (
                20,
                b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (name) /V (Jane Roe) "
                b"/Rect [130 700 330 720] /P 4 0 R /AP << /N 21 0 R >> >>",
            ),
            (21, appearance),
        ],
    )


def pypdf_written():
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(basic(pages=2))))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def raw_with_packed_image():
    pixels = zlib.compress(bytes(range(256)) * 4)
    image = stream(
        pixels.hex().encode() + b">",
        b"/Subtype /Image /Width 32 /Height 32 /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter [/ASCIIHexDecode /FlateDecode]",
    )
    return basic(
        resources=b"/XObject << /Im0 20 0 R >>",
        content=b"q 100 0 0 100 72 600 cm /Im0 Do Q",
        extra=[(20, image)],
    )


BENIGN = [
    ("sample-clinical-note", lambda: sample_bytes("clinical-note.pdf"), 1),
    ("pypdf-writer-blank-pages", lambda: pdf_bytes(pages=3), 3),
    ("pypdf-writer-copy-of-text", pypdf_written, 2),
    ("multi-page-text", lambda: basic(pages=3), 3),
    ("page-tree-inherited-attributes", inherited_attributes, 1),
    ("scanned-image", scanned_page, 1),
    ("scanned-by-pillow", pillow_scan, 2),
    ("pdfa-looking", pdfa_looking, 1),
    ("linearised", lambda: pikepdf_bytes(pages=3, linearize=True), 3),
    ("object-streams", lambda: pikepdf_bytes(pages=2, object_stream_mode=pikepdf.ObjectStreamMode.generate), 2),
    (
        "incremental-save",
        lambda: append_update(basic(), [(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>")]),
        1,
    ),
    (
        "incremental-save-deleting-an-object",
        lambda: append_deletion(basic(extra=[(20, b"<< /Unused 1 >>")]), 20),
        1,
    ),
    ("fillable-looking-page", fillable_looking, 1),
    ("links-within-the-document", internal_links, 2),
    ("outline-with-destinations", outline, 2),
    ("web-link", web_link, 1),
    ("open-on-first-page", lambda: basic(catalog_extra=b"/OpenAction [4 0 R /XYZ null null 0]"), 1),
    ("filled-form-field", filled_form, 1),
    ("image-with-two-filters", raw_with_packed_image, 1),
]


@pytest.mark.parametrize(("build", "pages"), [pytest.param(b, p, id=i) for i, b, p in BENIGN])
def test_accepts_ordinary_note_and_rebuilds_a_clean_copy(build, pages):
    upload = build()
    checked = check_and_rebuild(upload, LIMITS)
    assert checked.page_count == pages
    assert checked.original_sha256 == hashlib.sha256(upload).hexdigest()
    for data in (upload, checked.content):
        assert len(PdfReader(io.BytesIO(data)).pages) == pages
        with pikepdf.open(io.BytesIO(data)) as pdf:
            assert len(pdf.pages) == pages
    assert_nothing_active(checked.content)


def test_the_corpus_has_at_least_ten_benign_variants():
    assert len(BENIGN) >= 10


def assert_nothing_active(data):
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert set(pdf.Root.keys()) <= {"/Type", "/Pages"}
        assert "/Info" not in pdf.trailer
        for obj in pdf.objects:
            names = set(_names(obj))
            assert not names & FORBIDDEN_IN_COPY, names & FORBIDDEN_IN_COPY
        for page in pdf.pages:
            for annot in page.obj.get("/Annots", []):
                assert annot.Subtype == pikepdf.Name.Link
                assert set(annot.keys()) <= {"/Type", "/Subtype", "/Rect", "/Border", "/C", "/A", "/Dest"}
                if "/A" in annot:
                    assert set(annot.A.keys()) == {"/S", "/URI"}


def _names(obj, depth=0):
    if isinstance(obj, pikepdf.Name):
        yield str(obj)
    elif isinstance(obj, pikepdf.Array) and depth < 10:
        for item in obj:
            yield from _names(item, depth + 1)
    elif isinstance(obj, pikepdf.Dictionary | pikepdf.Stream) and depth < 10:
        for key, value in obj.items():
            yield key
            if not getattr(value, "is_indirect", False):
                yield from _names(value, depth + 1)


def test_a_link_within_the_document_points_at_the_copys_own_page():
    checked = check_and_rebuild(internal_links(), LIMITS)
    with pikepdf.open(io.BytesIO(checked.content)) as pdf:
        annots = pdf.pages[0].obj.Annots
        assert len(annots) == 2
        assert all(annot.Dest[0].objgen == pdf.pages[1].obj.objgen for annot in annots)


def test_a_web_link_is_kept():
    checked = check_and_rebuild(web_link(), LIMITS)
    with pikepdf.open(io.BytesIO(checked.content)) as pdf:
        (annot,) = pdf.pages[0].obj.Annots
        assert bytes(annot.A.URI) == b"https://hospital.example/"


def test_a_filled_in_field_value_is_drawn_into_the_copy():
    checked = check_and_rebuild(filled_form(), LIMITS)
    with pikepdf.open(io.BytesIO(checked.content)) as pdf:
        page = pdf.pages[0]
        assert "/Annots" not in page.obj
        drawn = [bytes(xobject.read_bytes()) for xobject in page.Resources.get("/XObject", {}).values()]
        assert any(b"Jane Roe" in content for content in drawn)


def test_the_copy_of_one_upload_is_the_same_bytes_every_time():
    assert check_and_rebuild(basic(), LIMITS).content == check_and_rebuild(basic(), LIMITS).content


def test_a_reference_to_a_missing_object_reads_as_null_in_both_parsers():
    # Editors leave these behind; viewers read them as null, and so does the comparison.
    data = basic(extra=[(20, b"<< /Kids [99 0 R] /Other 98 0 R >>")])
    assert check_and_rebuild(data, LIMITS).page_count == 1


def test_inherited_page_attributes_are_kept_on_the_copys_pages():
    checked = check_and_rebuild(inherited_attributes(), LIMITS)
    with pikepdf.open(io.BytesIO(checked.content)) as pdf:
        page = pdf.pages[0].obj
        assert page.Rotate == 90
        assert [int(value) for value in page.MediaBox] == [0, 0, 612, 792]
        assert "/F1" in page.Resources.Font
