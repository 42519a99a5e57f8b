"""Page images and page text with PDFium (pypdfium2): the child-process side of
orders/pdf/preview.py. Only the sandbox's child runs these jobs, so PDFium, which is not
thread-safe, never runs inside a threaded web worker (the web process imports this module
for PAGE_BREAK alone; PDFium is imported inside the jobs). No Django here.

Each job takes the request the parent wrote (orders/pdf/sandbox.py) and the file, and
answers (a JSON-able dict, bytes): `{"ok": True, ...}` with the PNG or the UTF-8 text, or
`{"ok": False, "reason": code}` with the reasons orders/pdf/preview.py turns into words.
"""

import io

# The text of one page is cut here: matching reads names and numbers near the top, and an
# unbounded text layer (a page of tiny glyphs) should not travel back to the web process.
MAX_TEXT_CHARS_PER_PAGE = 20_000
# Between pages in the text answer: form feed, which no text layer uses inside a page. The
# one definition: orders/pdf/preview.py and orders/matching_text.py import it from here.
PAGE_BREAK = "\f"


def _open(data):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        return None


def render_job(request, data):
    """One page as a PNG whose longer side is at most `max_px` pixels."""
    document = _open(data)
    if document is None:
        return {"ok": False, "reason": "unreadable"}, b""
    index, max_px = request["page_index"], request["max_px"]
    if not 0 <= index < len(document):
        return {"ok": False, "reason": "no_such_page", "page_count": len(document)}, b""
    try:
        page = document[index]
        width, height = page.get_size()
        # The scale that puts the longer side at max_px (1 = 72 dpi), shrunk a hair so
        # rounding up can never pass the bound.
        scale = max_px / max(width, height, 1) * 0.9999
        bitmap = page.render(scale=scale, rev_byteorder=True, may_draw_forms=False)
        image = bitmap.to_pil()
    except Exception:  # noqa: BLE001 - whatever PDFium refuses, the answer is "cannot show it"
        return {"ok": False, "reason": "unreadable"}, b""
    page_count = len(document)
    document.close()
    png = io.BytesIO()
    # In colour, as the PDF is. Level 3: a text page encodes in half the time of the default
    # level 6 for a file about twice the size (~30 KiB, kept once per page).
    image.save(png, format="PNG", compress_level=3)
    return {"ok": True, "page_count": page_count, "width": image.width, "height": image.height}, png.getvalue()


def text_job(request, data):
    """The text layer of the first `pages` pages, pages separated by PAGE_BREAK."""
    document = _open(data)
    if document is None:
        return {"ok": False, "reason": "unreadable"}, b""
    texts = []
    try:
        for index in range(min(request["pages"], len(document))):
            text_page = document[index].get_textpage()
            texts.append(text_page.get_text_range()[:MAX_TEXT_CHARS_PER_PAGE].replace(PAGE_BREAK, " "))
    except Exception:  # noqa: BLE001 - a page whose text cannot be read ends the text here
        if not texts:
            return {"ok": False, "reason": "unreadable"}, b""
    page_count = len(document)
    document.close()
    return {"ok": True, "page_count": page_count}, PAGE_BREAK.join(texts).encode()


def texts_job(request, data):
    """text_job for several files sent one after another, `request["sizes"]` their lengths:
    one child and one PDFium start-up for a whole batch. Each file's answer gives the length
    of its text in the content that follows."""
    answers, texts, offset = [], [], 0
    for size in request["sizes"]:
        answer, text = text_job(request, data[offset : offset + size])
        offset += size
        answers.append({**answer, "text_bytes": len(text)})
        texts.append(text)
    return {"ok": True, "files": answers}, b"".join(texts)
