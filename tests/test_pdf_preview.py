"""Pictures and text of a PDF's pages come from PDFium in a limited child process: a PNG
within the size bound, the text of the first pages, and a PreviewError, never a crash of
the web process, for a broken or hostile file."""

import struct
import subprocess

import pytest

from orders.pdf import preview
from orders.pdf import sandbox as sandbox_module
from orders.pdf.preview import PreviewError, first_pages_text, render_page
from tests.conftest import sample_bytes
from tests.pdf_corpus import basic, flate, raw_pdf, zeros_deflated
from tests.pdf_text import text_pdf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(png):
    """(width, height) from a PNG's header chunk."""
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def one_page(width, height, content=b"BT /F1 12 Tf 10 10 Td (x) Tj ET"):
    return raw_pdf(
        [
            (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
            (2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
            (3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R >>" % (width, height)),
            (4, flate(content)),
        ]
    )


def test_a_page_becomes_a_png_whose_longer_side_is_the_bound(settings):
    width, height = png_size(render_page(sample_bytes("clinical-note.pdf")))
    assert height == settings.NOTE_PREVIEW_MAX_PX - 1 or height == settings.NOTE_PREVIEW_MAX_PX
    assert width < height


@pytest.mark.parametrize(("width", "height"), [(792, 612), (20, 30), (14400, 14400), (14400, 200)])
def test_any_page_size_stays_within_the_bound(settings, width, height):
    settings.NOTE_PREVIEW_MAX_PX = 500
    rendered = png_size(render_page(one_page(width, height)))
    assert max(rendered) <= 500
    assert max(rendered) >= 499
    # The shape is kept: landscape stays landscape.
    assert (rendered[0] >= rendered[1]) == (width >= height)


def test_each_page_can_be_rendered():
    pages = [png_size(render_page(basic(pages=3), index)) for index in range(3)]
    assert len(set(pages)) == 1


@pytest.mark.parametrize("index", [3, -1, 20])
def test_a_page_that_is_not_there_is_a_preview_error(settings, index):
    settings.NOTE_PREVIEW_MAX_PAGES = 20
    with pytest.raises(PreviewError) as caught:
        render_page(basic(pages=3), index)
    assert caught.value.reason == "no_such_page"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not_pdf"),
        (b"GIF89a not a pdf", "not_pdf"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", "unreadable"),
        (sample_bytes("clinical-note.pdf")[:400], "unreadable"),
    ],
    ids=["empty", "not-a-pdf", "no-pages", "truncated"],
)
def test_a_broken_file_is_a_preview_error_in_plain_words(data, reason):
    with pytest.raises(PreviewError) as caught:
        render_page(data)
    assert caught.value.reason == reason
    assert "PDF" in caught.value.message and "Traceback" not in caught.value.message


def test_a_page_that_unpacks_beyond_the_memory_limit_crashes_the_child_only(settings):
    # A 300 MB page description against a 200 MB child: the child fails, the caller gets words.
    settings.NOTE_CHECK_MEMORY_MB = 200
    bomb = raw_pdf(
        [
            (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
            (2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"),
            (3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"),
            (
                4,
                b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(z := zeros_deflated(300 << 20))
                + z
                + b"\nendstream",
            ),
        ]
    )
    # PDFium aborts (SIGABRT) when its allocation fails: a real crash, confined to the child.
    with pytest.raises(PreviewError) as caught:
        render_page(bomb)
    assert caught.value.reason == "too_complex"


@pytest.mark.parametrize(
    ("returncode", "stdout"), [(-11, b""), (-9, b""), (0, b"garbled\n")], ids=["segv", "killed", "garbled"]
)
def test_a_renderer_crash_is_a_preview_error(monkeypatch, returncode, stdout):
    def crashed(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], returncode, stdout=stdout, stderr=b"")

    monkeypatch.setattr(sandbox_module.subprocess, "run", crashed)
    with pytest.raises(PreviewError) as caught:
        render_page(basic())
    assert caught.value.reason == "too_complex"


def test_a_renderer_that_never_answers_is_stopped(monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(sandbox_module.subprocess, "run", hang)
    with pytest.raises(PreviewError) as caught:
        first_pages_text(basic())
    assert caught.value.reason == "too_complex"


def test_rendering_happens_in_a_limited_child_without_the_environment(monkeypatch, settings):
    settings.NOTE_CHECK_CPU_SECONDS = 9
    settings.NOTE_CHECK_MEMORY_MB = 700
    seen = []
    real_run = subprocess.run

    def spy(*args, **kwargs):
        seen.append({**kwargs, "argv": args[0]})
        return real_run(*args, **kwargs)

    monkeypatch.setattr(sandbox_module.subprocess, "run", spy)
    render_page(basic())
    [call] = seen
    assert call["env"] == {"LC_ALL": "C.UTF-8"}
    # The job's header is the child's last argument; stdin carries the file alone.
    header = call["argv"][-1].encode()
    assert call["input"] == basic()
    assert b'"job": "render"' in header
    assert b'"cpu_seconds": 9' in header and b'"memory_bytes": %d' % (700 << 20) in header


def test_the_text_of_the_first_pages_is_read_page_by_page():
    data = text_pdf(["Patient: Nguyễn Văn\nMRN: 00123", "Born 7 Mar 1980", "Third page"])
    text = first_pages_text(data, pages=2)
    first, second = text.split(preview.PAGE_BREAK)
    assert "Nguyễn Văn" in first and "MRN: 00123" in first
    assert second.strip() == "Born 7 Mar 1980"


def test_a_page_without_text_reads_as_nothing():
    assert first_pages_text(one_page(612, 792, b"0 0 m 100 100 l S")) == ""


def test_text_is_read_from_no_more_pages_than_the_bound(settings):
    settings.NOTE_PREVIEW_MAX_PAGES = 2
    text = first_pages_text(text_pdf(["one", "two", "three"]), pages=10)
    assert text.split(preview.PAGE_BREAK) == ["one", "two"]


def test_a_batch_of_files_is_read_in_one_child_each_file_as_alone(monkeypatch):
    files = [
        text_pdf(["MRN: 00123", "Born 7 Mar 1980"]),
        b"not a pdf",
        b"%PDF-1.7 broken",
        text_pdf(["Nguyễn Văn"]),
        one_page(612, 792, b"0 0 m 100 100 l S"),
    ]
    calls = []
    real_run = subprocess.run

    def spy(*args, **kwargs):
        calls.append(args[0][-1].encode())
        return real_run(*args, **kwargs)

    monkeypatch.setattr(sandbox_module.subprocess, "run", spy)
    texts = preview.first_pages_texts(files)
    assert len(calls) == 1 and b'"job": "texts"' in calls[0]
    assert texts[0] == first_pages_text(files[0]) == "MRN: 00123\fBorn 7 Mar 1980"
    assert (texts[1].reason, texts[2].reason) == ("not_pdf", "unreadable")
    assert texts[3:] == ["Nguyễn Văn", ""]


def test_a_file_that_takes_the_batch_child_down_costs_only_itself(monkeypatch):
    good, bad = text_pdf(["readable"]), text_pdf(["crashes the renderer"])
    real_run = sandbox_module.run_in_child

    def crashing(job, data, **kwargs):
        # Stands for a file that makes PDFium crash: any child that reads it dies.
        if bad in data:
            raise sandbox_module.ChildFailed("-11")
        return real_run(job, data, **kwargs)

    monkeypatch.setattr(preview, "run_in_child", crashing)
    texts = preview.first_pages_texts([good, bad, good])
    assert texts[0] == texts[2] == "readable"
    assert texts[1].reason == "too_complex"


def test_a_batch_is_split_into_groups_that_fit_the_child(monkeypatch):
    monkeypatch.setattr(preview, "TEXT_GROUP_BYTES", 1)
    groups = []
    real_run = sandbox_module.run_in_child

    def counting(job, data, **kwargs):
        groups.append(len(kwargs.get("sizes", [None])))
        return real_run(job, data, **kwargs)

    monkeypatch.setattr(preview, "run_in_child", counting)
    assert preview.first_pages_texts([text_pdf(["a"]), text_pdf(["b"])]) == ["a", "b"]
    assert groups == [1, 1]


def test_the_child_jobs_answer_the_same_when_called_directly():
    # What runs in the child, called in this (single-threaded) test process: the answers
    # the parent decodes, and a page outside the document named as such.
    from orders.pdf import render

    data = text_pdf(["first page", "second page"])
    answer, png = render.render_job({"page_index": 1, "max_px": 300}, data)
    assert answer == {"ok": True, "page_count": 2, "width": answer["width"], "height": answer["height"]}
    assert png_size(png) == (answer["width"], answer["height"]) and answer["height"] <= 300
    assert render.render_job({"page_index": 2, "max_px": 300}, data)[0]["reason"] == "no_such_page"
    assert render.render_job({"page_index": 0, "max_px": 300}, b"%PDF-1.7 broken")[0]["reason"] == "unreadable"
    answer, text = render.texts_job({"pages": 1, "sizes": [len(data), 5]}, data + b"%PDF-")
    assert [item["ok"] for item in answer["files"]] == [True, False]
    assert text == b"first page"


def test_groups_fit_the_child_in_order_and_an_oversized_file_goes_alone(monkeypatch):
    monkeypatch.setattr(preview, "TEXT_GROUP_BYTES", 10)
    sizes = {"a": 5, "b": 5, "c": 20, "d": 1, "e": 9, "f": 1}
    assert list(preview.text_groups(sizes, sizes.get)) == [["a", "b"], ["c"], ["d", "e"], ["f"]]
