"""The upload gate: is this PDF one that every viewer will show the same, with nothing
in it that runs, launches, loads or submits anything?

`inspect(data, limits)` returns the page count or raises PdfRejected. In order:

1. The bytes say PDF, and the file is within the size limit.
2. No object number is defined twice within one revision of the file (viewers that
   repair a file pick different copies).
3. qpdf (through pikepdf) opens it without repairing anything and without a warning
   (a warning is how qpdf reports a repair, a duplicate key or a bad offset).
4. The object count and how much the streams unpack to are within the limits.
5. pypdf opens it in strict mode (which raises where it would otherwise repair, and on
   duplicate dictionary keys) and logs no warning.
6. Both parsers count the same pages and read every object identically (`graph.py`).
7. No object, whether reachable from the catalog or not, whether stored directly or inside
   an object stream, holds active content (`graph.refusal_for`).

This does unbounded work on hostile input only inside a child process with CPU and memory
limits (`sandbox.py`); call it directly only from there and from tests.
"""

import io
import logging
import re
from contextlib import contextmanager

import pikepdf
from pypdf import PdfReader
from pypdf.generic import IndirectObject

from orders.pdf.graph import Ref, Stream, from_pikepdf, from_pypdf, refusal_for
from orders.pdf.inflate import InflateLimit, unpacked_size
from orders.pdf.refusals import PdfRejected, refuse_basics

# An object header `12 0 obj`.
_OBJECT_HEADER = re.compile(rb"(?<![0-9])(\d{1,10})[\x00\t\n\x0c\r ]+(\d{1,5})[\x00\t\n\x0c\r ]+obj(?![A-Za-z])")
# pypdf says this of every linearised file (its first xref section starts past object 0);
# were its "correction" wrong, the object-by-object comparison with qpdf would catch it.
_PYPDF_HARMLESS = ("Xref table not zero-indexed",)
# Containers of other objects that each parser may or may not list as objects of their own.
_CONTAINERS = {"/XRef", "/ObjStm"}


def inspect(data, limits):
    """Check `data` (the whole file) and return its page count, or raise PdfRejected."""
    refuse_basics(data, limits)
    refuse_duplicate_objects(data)
    try:
        with _open_qpdf(data) as pdf:
            table = {objgen: entry for objgen, entry in pdf.get_xref_table().items() if entry.type in (1, 2)}
            if len(table) > limits.max_objects:
                raise PdfRejected.because("too_many_objects")
            _refuse_inflation(pdf, table, limits)
            page_count = len(pdf.pages)
            if page_count > limits.max_pages:
                raise PdfRejected.because("too_many_pages")
            qpdf_graph = {Ref(*objgen): _qpdf_object(pdf, objgen, limits) for objgen in table}
            qpdf_root = from_pikepdf(pdf.trailer.get("/Root"), max_depth=limits.max_depth)
            _refuse_qpdf_warnings(pdf)
        with _pypdf_warnings() as warnings:
            reader = _open_pypdf(data)
            pypdf_pages = len(reader.pages)
            pypdf_graph = _pypdf_graph(reader, limits, in_use={num for num, _ in table})
            pypdf_root = from_pypdf(reader.trailer.raw_get("/Root"), max_depth=limits.max_depth)
        if warnings:
            raise PdfRejected.because("unreadable")
    except (PdfRejected, MemoryError):
        raise
    except RecursionError:
        raise PdfRejected.because("too_deep") from None
    except Exception:  # noqa: BLE001 - any other parser failure means a file it cannot read as it is
        raise PdfRejected.because("unreadable") from None
    qpdf_graph, pypdf_graph = _comparable(qpdf_graph), _comparable(pypdf_graph)
    if page_count != pypdf_pages or qpdf_root != pypdf_root or qpdf_graph != pypdf_graph:
        raise PdfRejected.because("parsers_disagree")
    if page_count == 0:
        raise PdfRejected.because("no_pages")
    reason = refusal_for(qpdf_graph)
    if reason:
        raise PdfRejected.because(reason)
    return page_count


def refuse_duplicate_objects(data):
    """Refuse an object number defined twice in one revision (between two `%%EOF` markers).

    An incremental update may redefine an object in a later revision; that is how edits
    are saved, and every viewer takes the newest. Two definitions in one revision only
    matter to a viewer that repairs the file, and repairing viewers pick different ones.
    """
    for revision in data.split(b"%%EOF"):
        seen = set()
        for match in _OBJECT_HEADER.finditer(_without_stream_bodies(revision)):
            key = (int(match[1]), int(match[2]))
            if key in seen:
                raise PdfRejected.because("duplicate_object")
            seen.add(key)


def _without_stream_bodies(text):
    """`text` with the bytes between each `stream` keyword and the next `endstream` left
    out (a stream holds any bytes, including what looks like an object header). One pass:
    a regular expression would rescan to the end for every `stream` without an end."""
    parts, position = [], 0
    while (start := text.find(b"stream", position)) != -1:
        end = text.find(b"endstream", start + len(b"stream"))
        if end == -1:
            break
        parts.append(text[position:start])
        position = end + len(b"endstream")
    parts.append(text[position:])
    return b" ".join(parts)


@contextmanager
def _open_qpdf(data):
    try:
        # Attributes inherited from the page tree stay where the file puts them, as pypdf
        # reads them (pikepdf would otherwise copy them onto each page when it opens).
        pdf = pikepdf.open(io.BytesIO(data), attempt_recovery=False, inherit_page_attributes=False)
    except pikepdf.PasswordError:
        raise PdfRejected.because("encrypted") from None
    with pdf:
        if pdf.is_encrypted:
            raise PdfRejected.because("encrypted")
        yield pdf


def _refuse_qpdf_warnings(pdf):
    warnings = pdf.get_warnings()
    if any("duplicated key" in str(warning) for warning in warnings):
        raise PdfRejected.because("duplicate_key")
    if warnings:
        raise PdfRejected.because("unreadable")


def _refuse_inflation(pdf, table, limits):
    """Count what every stream unpacks to (object streams too) before anything is decoded."""
    budget = limits.max_inflated_bytes
    for objgen, entry in table.items():
        if entry.type != 1:
            continue  # objects inside object streams are never streams themselves
        obj = pdf.get_object(objgen)
        if isinstance(obj, pikepdf.Stream):
            dictionary = {str(key): _filter_names(value) for key, value in obj.items() if str(key) == "/Filter"}
            try:
                budget -= unpacked_size(obj.read_raw_bytes(), dictionary, budget)
            except InflateLimit:
                raise PdfRejected.because("inflate_limit") from None
            if budget < 0:
                raise PdfRejected.because("inflate_limit")


def _filter_names(value):
    if isinstance(value, pikepdf.Array):
        return [str(item) for item in value]
    return str(value)


def _qpdf_object(pdf, objgen, limits):
    return from_pikepdf(pdf.get_object(objgen), max_depth=limits.max_depth, top=True)


def _open_pypdf(data):
    try:
        reader = PdfReader(io.BytesIO(data), strict=True)
    except Exception as error:  # noqa: BLE001 - classified below, never shown
        if "Multiple definitions" in f"{error} {error.__cause__} {error.__context__}":
            raise PdfRejected.because("duplicate_key") from None
        raise
    if reader.is_encrypted:
        raise PdfRejected.because("encrypted")
    return reader


def _pypdf_graph(reader, limits, *, in_use):
    """pypdf's objects, less those a later xref section frees and qpdf does not list
    (`in_use` is qpdf's): an incremental update may delete an object, and pypdf still
    lists the copy from the older revision."""
    freed = {num for entries in reader.xref_free_entry.values() for num, free in entries.items() if free}
    ids = {(num, generation) for generation, entries in reader.xref.items() for num in entries}
    ids.update((num, 0) for num in reader.xref_objStm)
    ids = {(num, generation) for num, generation in ids if num in in_use or num not in freed}
    graph = {}
    for num, generation in sorted(ids):
        obj = reader.get_object(IndirectObject(num, generation, reader))
        graph[Ref(num, generation)] = from_pypdf(obj, max_depth=limits.max_depth)
    return graph


def _comparable(graph):
    """`graph` without object and xref streams, which each parser may or may not list, and
    with references to objects the file does not have read as null, as viewers read them
    (qpdf already does; pypdf keeps the reference)."""
    return {
        ref: _null_dangling(value, graph)
        for ref, value in graph.items()
        if not (isinstance(value, Stream) and value.dictionary.get("/Type") in _CONTAINERS)
    }


def _null_dangling(value, graph):
    if isinstance(value, Ref):
        return value if value in graph else None
    if isinstance(value, list):
        return [_null_dangling(item, graph) for item in value]
    if isinstance(value, Stream):
        return Stream(_null_dangling(value.dictionary, graph), value.digest)
    if isinstance(value, dict):
        entries = {key: _null_dangling(item, graph) for key, item in value.items()}
        return {key: item for key, item in entries.items() if item is not None}
    return value


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        message = record.getMessage()
        if not message.startswith(_PYPDF_HARMLESS):
            self.records.append(message)


@contextmanager
def _pypdf_warnings():
    """pypdf reports what it repaired as log warnings, even in strict mode; collect them."""
    handler = _Collect()
    pypdf_logger = logging.getLogger("pypdf")
    pypdf_logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        pypdf_logger.removeHandler(handler)
