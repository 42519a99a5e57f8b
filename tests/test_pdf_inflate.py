"""Counting what a stream unpacks to, without holding more than the budget."""

import base64
import zlib

import pytest

from orders.pdf.inflate import InflateLimit, unpacked_size


def test_flate_counts_the_unpacked_size():
    assert unpacked_size(zlib.compress(bytes(5000)), {"/Filter": "/FlateDecode"}, 10_000) == 5000


def test_flate_past_the_budget_stops():
    with pytest.raises(InflateLimit):
        unpacked_size(zlib.compress(bytes(5000)), {"/Filter": "/FlateDecode"}, 4999)


def test_damaged_flate_counts_as_empty():
    assert unpacked_size(b"not deflate", {"/Filter": "/FlateDecode"}, 100) == 0


def test_hex_then_flate_is_unpacked_in_order():
    packed = zlib.compress(bytes(300)).hex().encode() + b">"
    assert unpacked_size(packed, {"/Filter": ["/ASCIIHexDecode", "/FlateDecode"]}, 1000) == 300


def test_hex_with_an_odd_digit_and_whitespace():
    assert unpacked_size(b"61 62\n6>", {"/Filter": "/ASCIIHexDecode"}, 100) == 3


def test_hex_that_is_not_hex_counts_as_empty():
    assert unpacked_size(b"zz>", {"/Filter": "/ASCIIHexDecode"}, 100) == 0


def test_ascii85():
    assert unpacked_size(base64.a85encode(bytes(40)) + b"~>", {"/Filter": "/ASCII85Decode"}, 100) == 40


def test_ascii85_that_is_not_ascii85_counts_as_empty():
    assert unpacked_size(b"\x7f\x7f~>", {"/Filter": "/ASCII85Decode"}, 100) == 0


def test_run_length_literal_and_repeated_runs():
    # Two literal bytes, then one byte repeated 128 times (257 - 129), then end of data.
    data = b"\x01ab" + b"\x81z" + b"\x80"
    assert unpacked_size(data, {"/Filter": "/RunLengthDecode"}, 1000) == 130


def test_run_length_bomb_past_the_budget_stops():
    with pytest.raises(InflateLimit):
        unpacked_size(b"\x81z" * 1000, {"/Filter": "/RunLengthDecode"}, 10_000)


def test_image_codecs_are_counted_as_stored():
    assert unpacked_size(b"\xff\xd8jpeg", {"/Filter": "/DCTDecode"}, 100) == 6
    assert unpacked_size(b"raw", {}, 100) == 3
