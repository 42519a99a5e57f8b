"""Every reason an uploaded PDF is refused, each proved with a real file built here.

`pdf_check` returns a CheckedPdf (the page count and the rebuilt copy) for an acceptable
PDF and otherwise raises PdfRejected with a plain-words message and a reason code for the
log. tests/test_pdf_gate_refuses.py has the full hostile corpus.
"""

import pytest
from pypdf.actions import JavaScript, PageTrigger
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NullObject,
    NumberObject,
    TextStringObject,
)

from orders.pdf import PdfRejected, pdf_check
from orders.pdf.sandbox import check_and_rebuild
from tests.conftest import sample_bytes
from tests.pdf_corpus import note_in_object_stream, pdf_bytes, with_link


@pytest.fixture(autouse=True)
def check_in_this_process(monkeypatch):
    """Run the child's work here: a child process per case costs a third of a second.
    tests/test_pdf_sandbox.py and tests/test_upload_note.py go through the real child."""
    monkeypatch.setattr("orders.pdf.sandbox.check_in_child", check_and_rebuild)


def rejected(data, **kwargs):
    with pytest.raises(PdfRejected) as caught:
        pdf_check(data, **kwargs)
    return caught.value


def action(**entries):
    return DictionaryObject({NameObject(f"/{key}"): value for key, value in entries.items()})


def add_link_annotation(writer, act):
    annotation = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Link"),
            NameObject("/Rect"): ArrayObject([FloatObject(10), FloatObject(10), FloatObject(100), FloatObject(30)]),
            NameObject("/A"): act,
        }
    )
    writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annotation)])


def test_accepts_the_sample_note():
    assert pdf_check(sample_bytes("clinical-note.pdf")).page_count == 1


def test_returns_the_page_count():
    assert pdf_check(pdf_bytes(pages=3)).page_count == 3


def test_refuses_an_empty_file():
    assert rejected(b"").reason == "empty"


def test_refuses_a_file_that_is_not_a_pdf_whatever_its_name():
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    refusal = rejected(png)
    assert refusal.reason == "not_pdf"
    assert "not a PDF" in refusal.message


def test_refuses_a_pdf_that_does_not_start_with_the_magic_bytes():
    assert rejected(b"   " + pdf_bytes()).reason == "not_pdf"


def test_refuses_a_damaged_pdf():
    assert rejected(b"%PDF-1.7\nthis is not really a pdf at all\n").reason == "unreadable"


def test_refuses_a_truncated_pdf():
    assert rejected(pdf_bytes()[:120]).reason == "unreadable"


def test_refuses_an_encrypted_pdf():
    refusal = rejected(pdf_bytes(lambda writer: writer.encrypt("secret-password")))
    assert refusal.reason == "encrypted"
    assert "encrypted" in refusal.message


def test_refuses_an_encrypted_pdf_even_with_an_empty_password():
    assert rejected(pdf_bytes(lambda writer: writer.encrypt(""))).reason == "encrypted"


def test_refuses_an_aes_encrypted_pdf():
    data = pdf_bytes(lambda writer: writer.encrypt("secret-password", algorithm="AES-256"))
    assert rejected(data).reason == "encrypted"


def test_refuses_javascript_run_on_open():
    data = pdf_bytes(lambda writer: writer.add_open_action(JavaScript("app.alert('hello');")))
    assert rejected(data).reason in {"javascript", "auto_action"}


def test_refuses_document_level_javascript_without_an_open_action():
    def build(writer):
        script = writer._add_object(action(S=NameObject("/JavaScript"), JS=TextStringObject("app.alert(1)")))
        names = DictionaryObject({NameObject("/Names"): ArrayObject([TextStringObject("init"), script])})
        writer._root_object[NameObject("/Names")] = DictionaryObject({NameObject("/JavaScript"): names})

    data = pdf_bytes(build)
    assert b"/OpenAction" not in data
    assert rejected(data).reason == "javascript"


def test_refuses_javascript_on_a_link():
    data = pdf_bytes(
        lambda writer: add_link_annotation(writer, action(S=NameObject("/JavaScript"), JS=TextStringObject("x()")))
    )
    assert rejected(data).reason == "javascript"


def test_refuses_a_page_open_action():
    data = pdf_bytes(lambda writer: writer.pages[0].add_action(PageTrigger.OPEN, JavaScript("app.beep(0);")))
    assert rejected(data).reason in {"auto_action", "javascript"}


def test_refuses_a_non_javascript_open_action():
    data = pdf_bytes(
        lambda writer: writer._root_object.__setitem__(
            NameObject("/OpenAction"), action(S=NameObject("/Named"), N=NameObject("/Print"))
        )
    )
    assert rejected(data).reason == "auto_action"


def open_on_first_page(writer):
    """`/OpenAction [page /XYZ null null 0]`, as LibreOffice and Word write it."""
    writer._root_object[NameObject("/OpenAction")] = ArrayObject(
        [writer.pages[0].indirect_reference, NameObject("/XYZ"), NullObject(), NullObject(), NumberObject(0)]
    )


def test_accepts_an_open_action_that_is_a_destination():
    data = pdf_bytes(open_on_first_page)
    assert b"/OpenAction" in data
    assert pdf_check(data).page_count == 1


def test_accepts_an_open_destination_given_by_name():
    data = pdf_bytes(lambda writer: setattr(writer, "open_destination", "chapter-1"))
    assert b"/OpenAction" in data
    assert pdf_check(data).page_count == 1


def test_accepts_a_goto_open_action():
    def build(writer):
        page = writer.pages[0].indirect_reference
        go_to = action(S=NameObject("/GoTo"), D=ArrayObject([page, NameObject("/Fit")]))
        writer._root_object[NameObject("/OpenAction")] = writer._add_object(go_to)

    data = pdf_bytes(build)
    assert b"/GoTo" in data
    assert pdf_check(data).page_count == 1


def test_refuses_a_goto_open_action_that_chains_another_action():
    def build(writer):
        page = writer.pages[0].indirect_reference
        visit = action(S=NameObject("/URI"), URI=TextStringObject("https://tracker.example/seen"))
        go_to = action(S=NameObject("/GoTo"), D=ArrayObject([page, NameObject("/Fit")]), Next=visit)
        writer._root_object[NameObject("/OpenAction")] = go_to

    assert rejected(pdf_bytes(build)).reason == "auto_action"


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        pytest.param(
            {"S": NameObject("/URI"), "URI": TextStringObject("https://tracker.example/seen")}, "auto_action", id="URI"
        ),
        # Types refused wherever they appear are named for what they are.
        pytest.param(
            {"S": NameObject("/SubmitForm"), "F": TextStringObject("https://forms.example/")},
            "submit_form",
            id="SubmitForm",
        ),
        pytest.param(
            {"S": NameObject("/ImportData"), "F": TextStringObject("data.fdf")}, "import_data", id="ImportData"
        ),
        pytest.param({"S": NameObject("/GoToR"), "F": TextStringObject("other.pdf")}, "other_file", id="GoToR"),
        pytest.param({"S": NameObject("/GoToE"), "F": TextStringObject("other.pdf")}, "other_file", id="GoToE"),
        pytest.param({"S": NameObject("/Rendition"), "OP": NumberObject(0)}, "rich_media", id="Rendition"),
        pytest.param({"S": NameObject("/Hide"), "T": TextStringObject("field")}, "auto_action", id="Hide"),
        pytest.param({"D": ArrayObject([NumberObject(0), NameObject("/Fit")])}, "auto_action", id="no-type"),
    ],
)
def test_refuses_every_other_open_action_type(entries, reason):
    data = pdf_bytes(lambda writer: writer._root_object.__setitem__(NameObject("/OpenAction"), action(**entries)))
    refusal = rejected(data)
    assert refusal.reason == reason
    if reason == "auto_action":
        assert "when it is opened" in refusal.message


def test_refuses_a_uri_open_action_held_in_its_own_object():
    def build(writer):
        visit = action(S=NameObject("/URI"), URI=TextStringObject("https://tracker.example/seen"))
        writer._root_object[NameObject("/OpenAction")] = writer._add_object(visit)

    assert rejected(pdf_bytes(build)).reason == "auto_action"


def test_accepts_a_uri_link_a_person_must_click():
    data = pdf_bytes(
        lambda writer: add_link_annotation(
            writer, action(S=NameObject("/URI"), URI=TextStringObject("https://hospital.example/"))
        )
    )
    assert pdf_check(data).page_count == 1


def test_refuses_additional_actions_even_beside_a_harmless_open_destination():
    def build(writer):
        open_on_first_page(writer)
        go_to = action(S=NameObject("/GoTo"), D=ArrayObject([writer.pages[0].indirect_reference, NameObject("/Fit")]))
        writer._root_object[NameObject("/AA")] = DictionaryObject({NameObject("/WC"): go_to})

    assert rejected(pdf_bytes(build)).reason == "auto_action"


def test_refuses_javascript_reached_from_a_harmless_open_destination():
    def build(writer):
        open_on_first_page(writer)
        add_link_annotation(writer, action(S=NameObject("/JavaScript"), JS=TextStringObject("x()")))

    assert rejected(pdf_bytes(build)).reason == "javascript"


def test_refuses_a_launch_action():
    data = pdf_bytes(
        lambda writer: add_link_annotation(
            writer, action(S=NameObject("/Launch"), F=TextStringObject("C:\\Windows\\calc.exe"))
        )
    )
    assert rejected(data).reason == "launch"


def test_refuses_an_embedded_file():
    refusal = rejected(pdf_bytes(lambda writer: writer.add_attachment("invoice.exe", b"MZ not really")))
    assert refusal.reason == "embedded_file"
    assert "embedded" in refusal.message


def test_refuses_rich_media():
    def build(writer):
        annotation = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/RichMedia"),
                NameObject("/Rect"): ArrayObject([FloatObject(0), FloatObject(0), FloatObject(50), FloatObject(50)]),
            }
        )
        writer.pages[0][NameObject("/Annots")] = ArrayObject([writer._add_object(annotation)])

    assert rejected(pdf_bytes(build)).reason == "rich_media"


def test_finds_a_hex_escaped_name_a_byte_scan_would_miss():
    # `/J#61vaScript` is the same name as `/JavaScript` to a PDF reader. Replacing the bytes
    # in a finished file would break its xref (now refused as damaged), so it is written so.
    disguised = with_link(b"<< /S /J#61vaScript /J#53 (x\\(\\)) >>")
    assert b"/JavaScript" not in disguised
    assert b"/JS " not in disguised
    assert rejected(disguised).reason == "javascript"


def pdf_in_an_object_stream(*, with_script):
    """The catalog, pages and (optionally) a script run on open, all in a compressed object stream."""
    if not with_script:
        return note_in_object_stream()
    return note_in_object_stream(b"/OpenAction 5 0 R ", extra=[(5, b"<< /S /JavaScript /JS (app.alert\\(1\\)) >>")])


def test_finds_active_content_inside_a_compressed_object_stream():
    data = pdf_in_an_object_stream(with_script=True)
    for name in (b"/OpenAction", b"/JavaScript", b"/JS"):
        assert name not in data
    assert rejected(data).reason in {"auto_action", "javascript"}


def test_accepts_a_clean_pdf_built_from_an_object_stream():
    assert pdf_check(pdf_in_an_object_stream(with_script=False)).page_count == 1


def test_refuses_a_pdf_with_no_pages():
    def build(writer):
        writer.remove_page(0)

    assert rejected(pdf_bytes(build)).reason == "no_pages"


def test_refuses_a_file_over_the_size_limit(settings):
    data = pdf_bytes()
    settings.NOTE_MAX_BYTES = len(data) - 1
    refusal = rejected(data)
    assert refusal.reason == "too_large"
    assert "largest note" in refusal.message


def test_accepts_a_file_exactly_at_the_size_limit(settings):
    data = pdf_bytes()
    settings.NOTE_MAX_BYTES = len(data)
    assert pdf_check(data).page_count == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF89a",
        b"%PDF-1.4\ngarbage",
        pytest.param(pdf_bytes(lambda writer: writer.encrypt("pw")), id="encrypted"),
        pytest.param(pdf_bytes(lambda writer: writer.add_attachment("a.txt", b"a")), id="attachment"),
    ],
)
def test_messages_are_plain_words(data):
    message = rejected(data).message
    assert message[0].isupper() and message.endswith(".")
    for jargon in ("Error", "pypdf", "Traceback", "xref", "/"):
        assert jargon not in message


def test_an_upload_is_checked_by_size_before_it_is_read_and_closed_either_way(settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from orders.pdf import pdf_check_upload

    settings.NOTE_MAX_BYTES = 1000
    big = SimpleUploadedFile("big.pdf", b"%PDF-1.7 " + b"x" * 2000, content_type="application/pdf")
    read = []
    big.chunks = lambda *args, **kwargs: read.append(True) or iter(())
    with pytest.raises(PdfRejected) as refused:
        pdf_check_upload(big)
    assert refused.value.reason == "too_large" and not read and big.closed

    small = SimpleUploadedFile("note.pdf", sample_bytes("clinical-note.pdf"), content_type="application/pdf")
    assert pdf_check_upload(small).page_count == 1 and small.closed
