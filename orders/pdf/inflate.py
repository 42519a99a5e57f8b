"""How much the file's streams unpack to, counted without ever holding more than the limit.

A 10 MB upload can carry content streams that inflate to gigabytes (deflate compresses
zeros about a thousandfold). Viewers unpack them to render; we unpack them here first,
under a budget, and refuse the file once the total passes it. Image codecs (JPEG, JPEG
2000, CCITT fax) are not unpacked: their output is pixels, not PDF syntax, and what they
hold is counted as stored.
"""

import base64
import re
import zlib

from orders.pdf.graph import filters_of

# Filters that only pack bytes; anything after them in a chain is an image codec.
_PACKING = {"/FlateDecode", "/ASCIIHexDecode", "/ASCII85Decode", "/RunLengthDecode"}
_WHITESPACE = re.compile(rb"[\x00\t\n\x0c\r ]")


class InflateLimit(Exception):
    """The streams unpack to more than the budget."""


def unpacked_size(raw, dictionary, budget):
    """The size `raw` unpacks to through the stream's packing filters; InflateLimit past `budget`."""
    data = raw
    for name in filters_of(dictionary):
        if name not in _PACKING:
            break
        data = _DECODERS[name](data, budget)
        if len(data) > budget:
            raise InflateLimit
    return len(data)


def _flate(data, budget):
    decompressor = zlib.decompressobj()
    try:
        # One byte past the budget is enough to know it is exceeded.
        return decompressor.decompress(data, budget + 1)
    except zlib.error:
        # A damaged deflate stream renders as whatever it held before the damage.
        return b""


def _hex(data, budget):
    digits = _WHITESPACE.sub(b"", data).split(b">")[0]
    if len(digits) % 2:
        digits += b"0"
    try:
        return bytes.fromhex(digits.decode("ascii"))
    except ValueError:
        return b""


def _ascii85(data, budget):
    text = _WHITESPACE.sub(b"", data).split(b"~>")[0]
    try:
        return base64.a85decode(text)
    except ValueError:
        return b""


def _run_length(data, budget):
    out = bytearray()
    index = 0
    while index < len(data) and len(out) <= budget:
        length = data[index]
        if length == 128:
            break
        if length < 128:
            out += data[index + 1 : index + 2 + length]
            index += length + 2
        else:
            out += data[index + 1 : index + 2] * (257 - length)
            index += 2
    return bytes(out)


_DECODERS = {
    "/FlateDecode": _flate,
    "/ASCIIHexDecode": _hex,
    "/ASCII85Decode": _ascii85,
    "/RunLengthDecode": _run_length,
}
