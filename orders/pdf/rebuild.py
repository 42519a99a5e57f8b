"""A clean copy of an accepted PDF: what we store, show the reviewer and send.

The gate decides whether the upload is acceptable; the copy makes sure that what leaves
us holds nothing the gate did not understand. A new PDF is written from scratch with only
what a page needs to be drawn: its boxes, rotation, transparency group, content and
resources. Left behind with the upload: the catalog's `/OpenAction`, `/Names`,
`/AcroForm`, `/Outlines`, `/AA` and metadata, the document information dictionary, every
page's `/AA` and every annotation except plain links (a web or email `/URI`, or a place in
this document). Form fields and markup are first flattened into the page content, so a
filled-in value still shows.
"""

import io

import pikepdf

from orders.pdf.graph import SAFE_URI_SCHEMES

# What a page keeps besides its content and resources. Inherited values are already on
# each page: pikepdf pushes them down from the page tree when it opens the file.
PAGE_KEYS = ("/MediaBox", "/CropBox", "/BleedBox", "/TrimBox", "/ArtBox", "/Rotate", "/UserUnit", "/Group")
# Destination kinds with the numbers that follow the page in a destination array.
DESTINATION_KINDS = {"/XYZ", "/Fit", "/FitH", "/FitV", "/FitR", "/FitB", "/FitBH", "/FitBV"}


def rebuild(data):
    """Return the bytes of a clean copy of `data`, a PDF the gate has accepted."""
    with pikepdf.open(io.BytesIO(data), attempt_recovery=False) as source:
        # Draw form fields and markup into the pages, then keep only their appearance.
        source.generate_appearance_streams()
        source.flatten_annotations(mode="all")
        copy = pikepdf.new()
        pages = list(source.pages)
        for page in pages:
            fresh = pikepdf.Dictionary(Type=pikepdf.Name.Page)
            for key in PAGE_KEYS:
                if key in page.obj:
                    fresh[key] = _copy(page.obj[key], source, copy)
            fresh.Resources = _copy(page.obj.get("/Resources", pikepdf.Dictionary()), source, copy)
            if "/Contents" in page.obj:
                fresh.Contents = _copy(page.obj.Contents, source, copy)
            copy.pages.append(pikepdf.Page(fresh))
        page_numbers = {page.obj.objgen: index for index, page in enumerate(pages)}
        for page, new_page in zip(pages, copy.pages, strict=True):
            links = [link for link in (_link(annot, page_numbers, copy) for annot in _annots(page)) if link]
            if links:
                new_page.obj.Annots = copy.make_indirect(pikepdf.Array(links))
        out = io.BytesIO()
        # A fixed /ID makes the copy of one upload the same bytes every time; object streams
        # keep it about the size of the upload.
        copy.save(
            out,
            deterministic_id=True,
            compress_streams=True,
            object_stream_mode=pikepdf.ObjectStreamMode.generate,
        )
    return out.getvalue()


def _copy(obj, source, copy):
    """`obj` and everything it refers to, copied into `copy`. Only indirect objects can be
    copied between files, so a direct container is first made indirect in the source."""
    if not isinstance(obj, pikepdf.Dictionary | pikepdf.Array | pikepdf.Stream):
        return obj
    if not obj.is_indirect:
        obj = source.make_indirect(obj)
    return copy.copy_foreign(obj)


def _annots(page):
    annots = page.obj.get("/Annots")
    return list(annots) if isinstance(annots, pikepdf.Array) else []


def _link(annot, page_numbers, copy):
    """A fresh link annotation with the same target, or None if it is not a plain link."""
    if not isinstance(annot, pikepdf.Dictionary) or annot.get("/Subtype") != pikepdf.Name.Link:
        return None
    rect = annot.get("/Rect")
    if not isinstance(rect, pikepdf.Array) or len(rect) != 4:
        return None
    link = pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Link, Rect=pikepdf.Array([float(value) for value in rect])
    )
    # The border and its colour, so the link looks as it did; numbers only (a dash pattern
    # or anything else is left to the viewer's default).
    for key in ("/Border", "/C"):
        value = annot.get(key)
        if isinstance(value, pikepdf.Array) and len(value) in (3, 4) and all(_is_number(item) for item in value):
            link[key] = pikepdf.Array([float(item) for item in value])
    action = annot.get("/A")
    destination = None
    if isinstance(action, pikepdf.Dictionary):
        if action.get("/S") == pikepdf.Name.URI:
            uri = bytes(action.get("/URI", pikepdf.String(b"")))
            if not uri.strip().lower().startswith(SAFE_URI_SCHEMES):
                return None
            link.A = pikepdf.Dictionary(S=pikepdf.Name.URI, URI=pikepdf.String(uri))
            return link
        if action.get("/S") == pikepdf.Name.GoTo:
            destination = _destination(action.get("/D"), page_numbers, copy)
    else:
        destination = _destination(annot.get("/Dest"), page_numbers, copy)
    if destination is None:
        return None
    link.Dest = destination
    return link


def _destination(value, page_numbers, copy):
    """An explicit destination on a page of this document, rewritten to the copy's page.
    Named destinations are dropped: the copy has no /Names or /Dests to look them up in."""
    if not isinstance(value, pikepdf.Array) or len(value) < 2:
        return None
    target = value[0]
    if not isinstance(target, pikepdf.Dictionary) or not target.is_indirect:
        return None
    index = page_numbers.get(target.objgen)
    kind = value[1]
    if index is None or not isinstance(kind, pikepdf.Name) or str(kind) not in DESTINATION_KINDS:
        return None
    numbers = [float(item) if isinstance(item, int | float) or _is_number(item) else None for item in value[2:6]]
    return pikepdf.Array([copy.pages[index].obj, kind, *numbers])


def _is_number(item):
    try:
        float(item)
    except (TypeError, ValueError):
        return False
    return True
