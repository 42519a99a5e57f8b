"""Hostile PDFs the upload gate refuses, each with the reason it must give.

Each file is built here (tests/pdf_corpus.py) and run through the same function the child
process runs (`check_and_rebuild`), in this process so the test is fast and measured;
tests/test_pdf_sandbox.py proves the child process itself.
"""

import re
import zlib
from dataclasses import replace

import pikepdf
import pytest

from orders.pdf.refusals import MESSAGES, Limits, PdfRejected
from orders.pdf.sandbox import check_and_rebuild
from tests.pdf_corpus import (
    TEXT,
    append_update,
    basic,
    flate,
    in_object_stream,
    link,
    note_in_object_stream,
    page_objects,
    pikepdf_bytes,
    raw_pdf,
    stream,
    with_annotation,
    with_link,
    zeros_deflated,
)

LIMITS = Limits(
    max_bytes=10 * 1024 * 1024,
    max_inflated_bytes=200 * 1024 * 1024,
    max_objects=50_000,
    max_pages=500,
    max_depth=32,
)
JS = b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>"
GO_TO_PAGE = b"<< /S /GoTo /D [4 0 R /Fit] >>"


def refusal(data, limits=LIMITS):
    with pytest.raises(PdfRejected) as caught:
        check_and_rebuild(data, limits)
    return caught.value


def shift_xref_offsets(data):
    """The same file with every xref offset off by three bytes: readers must repair it."""
    head, table = data.rsplit(b"\nxref\n", 1)
    shifted = re.sub(rb"(\d{10}) 00000 n", lambda match: b"%010d 00000 n" % (int(match[1]) + 3), table)
    return head + b"\nxref\n" + shifted


def encrypted(**kwargs):
    return pikepdf_bytes(encryption=pikepdf.Encryption(**kwargs))


def nested(depth):
    return b"[" * depth + b"1" + b"]" * depth


def duplicate_object_in_one_body():
    """Object 20 twice in one body: the xref points at the harmless first copy, a repairing
    viewer may take the second, which holds JavaScript."""
    objects = [*basic_objects(b"/OpenAction 20 0 R"), (20, GO_TO_PAGE), (20, JS)]
    return raw_pdf(objects)


def basic_objects(catalog_extra=b""):
    return page_objects(catalog_extra=catalog_extra)


def duplicate_object_behind_broken_xref():
    return shift_xref_offsets(duplicate_object_in_one_body())


CASES = [
    # Scripts, wherever they hide.
    ("javascript-open-action", lambda: basic(catalog_extra=b"/OpenAction " + JS), "javascript"),
    (
        "javascript-names-tree",
        lambda: basic(catalog_extra=b"/Names << /JavaScript << /Names [(init) 20 0 R] >> >>", extra=[(20, JS)]),
        "javascript",
    ),
    ("javascript-on-link", lambda: with_link(JS), "javascript"),
    (
        "javascript-in-next-chain",
        lambda: with_link(b"<< /S /URI /URI (https://a.example/) /Next [" + GO_TO_PAGE + b" " + JS + b"] >>"),
        "javascript",
    ),
    ("javascript-hex-escaped", lambda: with_link(b"<< /S /J#61vaScript /J#53 (x\\(\\)) >>"), "javascript"),
    ("javascript-name-split-by-comment", lambda: with_link(b"<< /S%note\n/JavaScript /JS (x) >>"), "javascript"),
    (
        "javascript-on-widget",
        lambda: with_annotation(b"<< /Type /Annot /Subtype /Widget /FT /Btn /T (b) /Rect [0 0 9 9] /A " + JS + b">>"),
        "javascript",
    ),
    (
        "javascript-in-outline-item",
        lambda: basic(
            catalog_extra=b"/Outlines 20 0 R",
            extra=[
                (20, b"<< /Type /Outlines /First 21 0 R /Last 21 0 R /Count 1 >>"),
                (21, b"<< /Title (Summary) /Parent 20 0 R /A " + JS + b" >>"),
            ],
        ),
        "javascript",
    ),
    ("javascript-in-object-stream", lambda: note_in_object_stream(b"/OpenAction 5 0 R", [(5, JS)]), "javascript"),
    (
        "javascript-added-by-incremental-update",
        lambda: append_update(basic(), [(1, b"<< /Type /Catalog /Pages 2 0 R /OpenAction 20 0 R >>"), (20, JS)]),
        "javascript",
    ),
    ("javascript-in-unreferenced-object", lambda: basic(extra=[(20, JS)]), "javascript"),
    # Launching programs and reaching other files.
    ("launch-unreferenced", lambda: basic(extra=[(20, b"<< /S /Launch /F (calc.exe) >>")]), "launch"),
    ("launch-win-dict", lambda: with_link(b"<< /S /Launch /Win << /F (cmd.exe) /P (/c calc) >> >>"), "launch"),
    ("launch-hex-escaped", lambda: with_link(b"<< /S /L#61unch /F (calc.exe) >>"), "launch"),
    ("goto-remote-file", lambda: with_link(b"<< /S /GoToR /F (other.pdf) /D [0 /Fit] >>"), "other_file"),
    ("goto-embedded-file", lambda: with_link(b"<< /S /GoToE /T << /R /C /N (a) >> /D [0 /Fit] >>"), "other_file"),
    ("import-data", lambda: with_link(b"<< /S /ImportData /F (data.fdf) >>"), "import_data"),
    ("submit-form", lambda: with_link(b"<< /S /SubmitForm /F (https://forms.example/) >>"), "submit_form"),
    ("uri-file-scheme", lambda: with_link(b"<< /S /URI /URI (file:///C:/Windows/System32/calc.exe) >>"), "unsafe_link"),
    ("uri-smb-share", lambda: with_link(b"<< /S /URI /URI (smb://attacker.example/share) >>"), "unsafe_link"),
    ("uri-javascript-scheme", lambda: with_link(b"<< /S /URI /URI (javascript:alert\\(1\\)) >>"), "unsafe_link"),
    # Things that run by themselves.
    ("open-action-named-print", lambda: basic(catalog_extra=b"/OpenAction << /S /Named /N /Print >>"), "auto_action"),
    (
        "open-action-uri-beacon",
        lambda: basic(catalog_extra=b"/OpenAction << /S /URI /URI (https://tracker.example/) >>"),
        "auto_action",
    ),
    (
        "open-action-goto-with-next",
        lambda: basic(catalog_extra=b"/OpenAction << /S /GoTo /D [4 0 R /Fit] /Next << /S /Named /N /Print >> >>"),
        "auto_action",
    ),
    ("additional-actions-on-page", lambda: basic(page_extra=b"/AA << /O " + GO_TO_PAGE + b" >>"), "auto_action"),
    ("additional-actions-on-catalog", lambda: basic(catalog_extra=b"/AA << /WC " + GO_TO_PAGE + b" >>"), "auto_action"),
    (
        "additional-actions-on-link",
        lambda: with_annotation(link(GO_TO_PAGE)[:-2] + b"/AA << /E " + GO_TO_PAGE + b" >> >>"),
        "auto_action",
    ),
    (
        "additional-actions-on-form-field",
        lambda: with_annotation(
            b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (dose) /Rect [0 0 99 20] /AA << /K " + GO_TO_PAGE + b" >> >>"
        ),
        "auto_action",
    ),
    # Forms, media, models and attachments.
    (
        "xfa-in-acroform",
        lambda: basic(catalog_extra=b"/AcroForm << /Fields [] /XFA 20 0 R >>", extra=[(20, stream(b"<xdp:xdp/>"))]),
        "xfa",
    ),
    (
        "annotation-3d",
        lambda: with_annotation(
            b"<< /Type /Annot /Subtype /3D /Rect [0 0 99 99] /3DD 21 0 R >>",
            extra_objects=[(21, stream(b"U3D", b"/Type /3D /Subtype /U3D"))],
        ),
        "three_d",
    ),
    (
        "annotation-rich-media",
        lambda: with_annotation(b"<< /Type /Annot /Subtype /RichMedia /Rect [0 0 9 9] >>"),
        "rich_media",
    ),
    ("rendition-action", lambda: with_link(b"<< /S /Rendition /OP 0 >>"), "rich_media"),
    ("annotation-sound", lambda: with_annotation(b"<< /Type /Annot /Subtype /Sound /Rect [0 0 9 9] >>"), "rich_media"),
    ("annotation-movie", lambda: with_annotation(b"<< /Type /Annot /Subtype /Movie /Rect [0 0 9 9] >>"), "rich_media"),
    (
        "embedded-files-name-tree",
        lambda: basic(
            catalog_extra=b"/Names << /EmbeddedFiles << /Names [(a.exe) 20 0 R] >> >>",
            extra=[
                (20, b"<< /Type /Filespec /F (a.exe) /EF << /F 21 0 R >> >>"),
                (21, stream(b"MZ", b"/Type /EmbeddedFile")),
            ],
        ),
        "embedded_file",
    ),
    (
        "file-attachment-annotation",
        lambda: with_annotation(b"<< /Type /Annot /Subtype /FileAttachment /Rect [0 0 9 9] /FS << /F (a.txt) >> >>"),
        "file_attachment",
    ),
    # Files the parsers would have to repair, or would read differently.
    (
        "duplicate-key-benign-first-script-last",
        lambda: with_link(b"<< /S /GoTo /D [4 0 R /Fit] /S /JavaScript /JS (x) >>"),
        "duplicate_key",
    ),
    ("duplicate-key-in-catalog", lambda: basic(catalog_extra=b"/Pages 2 0 R"), "duplicate_key"),
    ("duplicate-object-in-one-body", duplicate_object_in_one_body, "duplicate_object"),
    ("duplicate-object-behind-broken-xref", duplicate_object_behind_broken_xref, "duplicate_object"),
    # pypdf and qpdf decode this out-of-range octal escape to different bytes.
    ("string-read-differently", lambda: basic(extra=[(20, b"<< /Title (\\777) >>")]), "parsers_disagree"),
    ("broken-xref-needs-repair", lambda: shift_xref_offsets(basic()), "unreadable"),
    ("no-xref-at-all", lambda: basic().split(b"xref\n")[0] + b"%%EOF\n", "unreadable"),
    ("truncated", lambda: basic()[:-60], "unreadable"),
    ("stream-length-wrong", lambda: basic(extra=[(20, b"<< /Length 3 >>\nstream\nabcdef\nendstream")]), "unreadable"),
    ("encrypted-with-password", lambda: encrypted(owner="owner-pw", user="user-pw"), "encrypted"),
    ("encrypted-empty-user-password", lambda: encrypted(owner="owner-pw", user=""), "encrypted"),
    (
        "no-pages",
        lambda: raw_pdf([(1, b"<< /Type /Catalog /Pages 2 0 R >>"), (2, b"<< /Type /Pages /Kids [] /Count 0 >>")]),
        "no_pages",
    ),
    # Work without bounds.
    (
        "deflate-bomb-in-content",
        lambda: basic(extra=[(20, stream(zeros_deflated(3 << 20), b"/Filter /FlateDecode"))]),
        "inflate_limit",
    ),
    (
        "deflate-bomb-in-two-filters",
        lambda: basic(
            extra=[
                (
                    20,
                    stream(
                        __import__("zlib").compress(zeros_deflated(3 << 20)), b"/Filter [/FlateDecode /FlateDecode]"
                    ),
                )
            ]
        ),
        "inflate_limit",
    ),
    (
        "bomb-spread-over-many-streams",
        lambda: basic(extra=[(20 + n, stream(zeros_deflated(1 << 19), b"/Filter /FlateDecode")) for n in range(6)]),
        "inflate_limit",
    ),
    ("too-many-pages", lambda: basic(pages=4), "too_many_pages"),
    ("too-many-objects", lambda: basic(extra=[(20 + n, b"<< >>") for n in range(40)]), "too_many_objects"),
    ("nesting-too-deep", lambda: basic(extra=[(20, nested(40))]), "too_deep"),
    # Packing a viewer may mishandle, and content from elsewhere.
    (
        "jbig2-image",
        lambda: basic(
            extra=[
                (
                    20,
                    stream(
                        b"\x00" * 16, b"/Subtype /Image /Width 8 /Height 8 /BitsPerComponent 1 /Filter /JBIG2Decode"
                    ),
                )
            ]
        ),
        "unsupported_filter",
    ),
    (
        "lzw-stream",
        lambda: basic(extra=[(20, stream(b"\x80\x0b\x60\x50\x22\x0c\x0c\x85\x01", b"/Filter /LZWDecode"))]),
        "unsupported_filter",
    ),
    ("unknown-filter", lambda: basic(extra=[(20, stream(b"abc", b"/Filter /NotAFilter"))]), "unsupported_filter"),
    (
        "filter-chain-too-long",
        lambda: basic(extra=[(20, stream(b"61>", b"/Filter [/AHx /AHx /AHx /AHx /ASCIIHexDecode]"))]),
        "unsupported_filter",
    ),
    ("external-stream-data", lambda: basic(extra=[(20, stream(b"", b"/F (secret.bin)"))]), "external_content"),
]

# Small limits for the cases about limits, so the files stay small and the tests fast.
CASE_LIMITS = {
    "deflate-bomb-in-content": replace(LIMITS, max_inflated_bytes=2 << 20),
    "deflate-bomb-in-two-filters": replace(LIMITS, max_inflated_bytes=2 << 20),
    "bomb-spread-over-many-streams": replace(LIMITS, max_inflated_bytes=2 << 20),
    "too-many-pages": replace(LIMITS, max_pages=3),
    "too-many-objects": replace(LIMITS, max_objects=30),
}


@pytest.mark.parametrize(("build", "reason"), [pytest.param(b, r, id=i) for i, b, r in CASES])
def test_refuses_hostile_pdf_with_its_reason(request, build, reason):
    limits = CASE_LIMITS.get(request.node.callspec.id, LIMITS)
    refused = refusal(build(), limits)
    assert refused.reason == reason
    assert refused.message == MESSAGES[reason]


def test_the_corpus_is_at_least_forty_hostile_constructions():
    assert len(CASES) >= 40
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


def test_the_object_stream_case_hides_every_name_from_a_byte_scan():
    data = note_in_object_stream(b"/OpenAction 5 0 R", [(5, JS)])
    for name in (b"/OpenAction", b"/JavaScript", b"/JS"):
        assert name not in data


def test_the_hex_escaped_case_has_no_plain_name_in_its_bytes():
    data = with_link(b"<< /S /J#61vaScript /J#53 (x\\(\\)) >>")
    assert b"/JavaScript" not in data and b"/JS " not in data


def test_an_incremental_update_that_only_renames_is_not_a_duplicate_object():
    # The same object number in two revisions is how edits are saved (see the benign corpus);
    # the refusal above is about two copies in one revision.
    data = append_update(basic(), [(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>")])
    assert check_and_rebuild(data, LIMITS).page_count == 1


def test_text_content_alone_is_not_mistaken_for_an_object_header():
    # `5 0 obj` inside a content stream is drawn text, not a second definition.
    content = TEXT + b" BT (4 0 obj 4 0 obj) Tj ET"
    assert check_and_rebuild(basic(content=content), LIMITS).page_count == 1


def test_a_bomb_inside_an_object_stream_is_refused():
    padding = b"% " + b" " * (3 << 20)
    data = in_object_stream(
        [
            (2, b"<< /Type /Catalog /Pages 3 0 R >>"),
            (3, b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>"),
            (4, b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] /Resources << >> >>" + padding),
        ]
    )
    assert refusal(data, replace(LIMITS, max_inflated_bytes=1 << 20)).reason == "inflate_limit"


@pytest.mark.slow
def test_refuses_a_deflate_bomb_at_the_default_limits():
    bomb = zeros_deflated(LIMITS.max_inflated_bytes + (1 << 20))
    assert len(bomb) < LIMITS.max_bytes
    data = basic(extra=[(20, stream(bomb, b"/Filter /FlateDecode"))])
    assert refusal(data).reason == "inflate_limit"


@pytest.mark.slow
def test_refuses_more_pages_than_the_default_limit():
    assert refusal(basic(pages=LIMITS.max_pages + 1)).reason == "too_many_pages"


def test_raw_helper_writes_a_file_both_parsers_accept():
    # The hostile cases differ from this only in what they are about.
    assert check_and_rebuild(basic(), LIMITS).page_count == 1
    assert check_and_rebuild(flate_note(), LIMITS).page_count == 1


def flate_note():
    return basic(extra=[(20, flate(b"q Q"))])


def test_the_bomb_helper_makes_a_real_deflate_stream():
    assert zlib.decompress(zeros_deflated(3 << 16)) == bytes(3 << 16)
