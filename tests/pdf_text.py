"""PDFs whose text a reader can extract, any Unicode included: notes made up for the
matching and preview tests and the benchmark. No binary fixtures.

    text_pdf(["Patient: Nguyễn, Văn\\nMRN: 00123", "page two"])   # one string per page

The font is the standard Helvetica with a ToUnicode map (PDF 1.7, section 9.10.3): ASCII
is drawn with its own glyphs, other characters get spare codes whose meaning the map gives,
so a text extractor reads "Nguyễn" even though Helvetica cannot draw it.
"""

from tests.pdf_corpus import flate, raw_pdf, stream

FIRST_SPARE_CODE = 0x80
LINE_HEIGHT = 14


def text_pdf(pages):
    codes = _codes("".join(pages))
    objects = [
        (1, b"<< /Type /Catalog /Pages 2 0 R >>"),
        (2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (_kids(len(pages)), len(pages))),
        (3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 4 0 R >>"),
        (4, stream(_to_unicode(codes))),
    ]
    for index, text in enumerate(pages):
        number = 5 + 2 * index
        objects.append(
            (
                number,
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 3 0 R >> >> >>" % (number + 1),
            )
        )
        objects.append((number + 1, flate(_content(text, codes))))
    return raw_pdf(objects)


def _kids(count):
    return b" ".join(b"%d 0 R" % (5 + 2 * index) for index in range(count))


def _codes(text):
    """Character -> one-byte code: printable ASCII as itself, anything else a spare code."""
    codes = {}
    spare = FIRST_SPARE_CODE
    for char in sorted(set(text) - {"\n"}):
        if " " <= char <= "~":
            codes[char] = ord(char)
        else:
            if spare > 0xFF:
                raise ValueError("more distinct non-ASCII characters than one font can map")
            codes[char], spare = spare, spare + 1
    return codes


def _content(text, codes):
    lines = []
    for row, line in enumerate(text.split("\n")):
        literal = b"".join(_escaped(codes[char]) for char in line)
        lines.append(b"BT /F1 11 Tf 72 %d Td (%s) Tj ET" % (740 - row * LINE_HEIGHT, literal))
    return b"\n".join(lines)


def _escaped(code):
    if code in (0x28, 0x29, 0x5C):  # ( ) \
        return b"\\" + bytes([code])
    return bytes([code]) if code < 0x80 else b"\\%03o" % code


def _to_unicode(codes):
    entries = [b"<%02X> <%s>" % (code, char.encode("utf-16-be").hex().upper().encode()) for char, code in codes.items()]
    blocks = []
    for start in range(0, len(entries), 100):
        chunk = entries[start : start + 100]
        blocks.append(b"%d beginbfchar\n%s\nendbfchar" % (len(chunk), b"\n".join(chunk)))
    return (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        + b"\n".join(blocks)
        + b"\nendcmap CMapName currentdict /CMapType get /CMap defineresource pop end end"
    )
