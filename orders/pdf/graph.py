"""Every object of a PDF as plain Python values, the same whichever parser read it, and
the active content found in them.

Both parsers' objects are turned into one neutral form (`Name`, `Ref`, `Stream`, dict,
list, bytes, float, bool, None) so the gate can compare what pypdf and qpdf (through
pikepdf) each saw, object by object, and then walk one graph for active content. Nothing
here follows references while converting: every indirect object is converted once, on its
own, which is what lets the walk reach objects that nothing in the catalog points at.
"""

import hashlib
from dataclasses import dataclass
from decimal import Decimal

import pikepdf
from pypdf import generic as pypdf_generic

from orders.pdf.refusals import PdfRejected


class Name(str):
    """A PDF name, e.g. `/JavaScript`, with `#xx` escapes already decoded by the parser."""


@dataclass(frozen=True)
class Ref:
    num: int
    gen: int


@dataclass(frozen=True, eq=True)
class Stream:
    """A stream: its dictionary and the SHA-256 of its raw (still encoded) bytes."""

    dictionary: dict
    digest: str


def _name(text):
    # A name that is not ASCII is never one a viewer acts on (all PDF action and key names
    # are ASCII); the two parsers decode such bytes differently, so they compare as one value.
    return Name(text if text.isascii() else "/?")


def _number(value):
    return round(float(value), 4)


def from_pikepdf(obj, *, max_depth, depth=0, top=False):
    """Convert a pikepdf object. `top` is the indirect object being converted itself."""
    if depth > max_depth:
        raise PdfRejected.because("too_deep")
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int | float | Decimal):
        return _number(obj)
    if not top and getattr(obj, "is_indirect", False):
        return Ref(*obj.objgen)
    if isinstance(obj, pikepdf.Name):
        return _name(str(obj))
    if isinstance(obj, pikepdf.String):
        return bytes(obj)
    if isinstance(obj, pikepdf.Array):
        return [from_pikepdf(item, max_depth=max_depth, depth=depth + 1) for item in obj]
    if isinstance(obj, pikepdf.Dictionary | pikepdf.Stream):
        entries = {}
        for key, value in obj.items():
            converted = from_pikepdf(value, max_depth=max_depth, depth=depth + 1)
            if converted is not None:  # qpdf reads a key whose value is null as absent
                entries[_name(key)] = converted
        if isinstance(obj, pikepdf.Stream):
            entries.pop("/Length", None)
            return Stream(entries, hashlib.sha256(obj.read_raw_bytes()).hexdigest())
        return entries
    # An indirect scalar (e.g. `/Length 6 0 R` resolved at the top level).
    if obj.type_code == pikepdf.ObjectType.integer or obj.type_code == pikepdf.ObjectType.real:
        return _number(obj)
    if obj.type_code == pikepdf.ObjectType.null:
        return None
    if obj.type_code == pikepdf.ObjectType.boolean:
        return bool(obj)
    raise PdfRejected.because("parsers_disagree")


def from_pypdf(obj, *, max_depth, depth=0):
    """Convert a pypdf object (references stay references)."""
    if depth > max_depth:
        raise PdfRejected.because("too_deep")
    if isinstance(obj, pypdf_generic.IndirectObject):
        return Ref(obj.idnum, obj.generation)
    if isinstance(obj, pypdf_generic.BooleanObject):
        return bool(obj)
    if obj is None or isinstance(obj, pypdf_generic.NullObject):
        return None
    if isinstance(obj, pypdf_generic.NameObject):
        return _name(str(obj))
    if isinstance(obj, pypdf_generic.TextStringObject | pypdf_generic.ByteStringObject):
        return bytes(obj.original_bytes)
    if isinstance(obj, pypdf_generic.NumberObject | pypdf_generic.FloatObject):
        return _number(obj)
    if isinstance(obj, pypdf_generic.ArrayObject):
        return [from_pypdf(item, max_depth=max_depth, depth=depth + 1) for item in obj]
    if isinstance(obj, pypdf_generic.DictionaryObject):
        entries = {}
        for key, value in obj.items():
            converted = from_pypdf(value, max_depth=max_depth, depth=depth + 1)
            if converted is not None:
                entries[_name(str(key))] = converted
        if isinstance(obj, pypdf_generic.StreamObject):
            # `_data` is the stream's bytes as stored in the file (pypdf decodes lazily).
            # pypdf keeps no /Length (the bytes' digest already says what the stream holds).
            entries.pop("/Length", None)
            return Stream(entries, hashlib.sha256(obj._data).hexdigest())
        return entries
    raise PdfRejected.because("parsers_disagree")


# Names that make a file refused wherever they appear, as a key or as a value.
NAME_REASONS = {
    "/JavaScript": "javascript",
    "/JS": "javascript",
    "/Launch": "launch",
    "/SubmitForm": "submit_form",
    "/ImportData": "import_data",
    "/GoToR": "other_file",
    "/GoToE": "other_file",
    "/RichMedia": "rich_media",
    "/Rendition": "rich_media",
    "/Sound": "rich_media",
    "/Movie": "rich_media",
    "/Screen": "rich_media",
    "/3D": "three_d",
    "/3DD": "three_d",
    "/XFA": "xfa",
    "/EmbeddedFile": "embedded_file",
    "/EmbeddedFiles": "embedded_file",
    "/EF": "embedded_file",
    "/FileAttachment": "file_attachment",
    "/AA": "auto_action",
}

# When a file has several problems, the one named is the first in this list.
PRIORITY = [
    "javascript",
    "launch",
    "xfa",
    "three_d",
    "rich_media",
    "embedded_file",
    "file_attachment",
    "submit_form",
    "import_data",
    "other_file",
    "unsafe_link",
    "external_content",
    "unsupported_filter",
    "auto_action",
]

# `/URI` links are kept (a person must click them, and viewers ask first) but only to the
# web or an email address: `file:`, `smb:` or `javascript:` links reach the reviewer's machine.
SAFE_URI_SCHEMES = (b"https:", b"http:", b"mailto:")

# Stream filters a note may use. LZW is left out (no current writer emits it, and it is
# unbounded to unpack), JBIG2 too (its decoders have a long record of exploits) and so is
# every name a viewer does not know, since they disagree on what an unknown filter means.
ALLOWED_FILTERS = {
    "/FlateDecode",
    "/ASCIIHexDecode",
    "/ASCII85Decode",
    "/RunLengthDecode",
    "/DCTDecode",
    "/CCITTFaxDecode",
    "/JPXDecode",
}
MAX_FILTERS = 4


def filters_of(dictionary):
    value = dictionary.get("/Filter")
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def refusal_for(graph):
    """The reason to refuse a file whose objects are `graph` ({Ref: value}), or None."""
    found = set()
    for value in graph.values():
        _find(value, graph, found)
    for reason in PRIORITY:
        if reason in found:
            return reason
    return None


def _find(value, graph, found):
    if isinstance(value, Name):
        if value in NAME_REASONS:
            found.add(NAME_REASONS[value])
    elif isinstance(value, list):
        for item in value:
            _find(item, graph, found)
    elif isinstance(value, Stream):
        _check_stream(value.dictionary, found)
        _find(value.dictionary, graph, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _find(key, graph, found)
            if key == "/OpenAction" and not _harmless_open_action(item, graph):
                found.add("auto_action")
            if key == "/URI" and isinstance(item, bytes) and not item.strip().lower().startswith(SAFE_URI_SCHEMES):
                found.add("unsafe_link")
            _find(item, graph, found)


def _harmless_open_action(value, graph):
    """An open destination (an array or a name) or a plain `/GoTo` that chains nothing:
    office suites write `/OpenAction [page /XYZ null null 0]` into ordinary documents.
    Any other open action runs by itself the moment the file is opened."""
    action = graph.get(value) if isinstance(value, Ref) else value
    if not isinstance(action, dict):
        return True
    return action.get("/S") == "/GoTo" and "/Next" not in action


def _check_stream(dictionary, found):
    if "/F" in dictionary or "/FFilter" in dictionary:
        found.add("external_content")
    filters = filters_of(dictionary)
    if len(filters) > MAX_FILTERS or any(name not in ALLOWED_FILTERS for name in filters):
        found.add("unsupported_filter")
