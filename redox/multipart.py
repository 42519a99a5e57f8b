"""A file upload sent in pieces: a multipart/form-data body that never holds the whole file.

requests builds a `files=` body in memory (the file, then the whole body around it), which
for a 25 MB note is twice the file in the worker on top of reading it. `MultipartBody` is
a file-like object with a known length: requests sends it with a Content-Length (not
chunked), reading a block at a time, and the file's pieces are pulled from their source
only as they are sent. Its framing is urllib3's own (`RequestField`, as `files=` uses),
so Redox sees the same body either way.

    source = FileSource(size=..., open=lambda: iter_of_byte_pieces)   # or FileSource.from_bytes(data)
    body = MultipartBody("file", "note.pdf", "application/pdf", source)
    session.post(url, data=body, headers={"Content-Type": body.content_type})

`body.seek(0)` starts it over (a second attempt after a 401 sends the file again).
"""

import binascii
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from urllib3.fields import RequestField


@dataclass(frozen=True)
class FileSource:
    """A file of `size` bytes that `open()` gives as an iterable of byte pieces, from the first
    byte each time it is called."""

    size: int
    open: Callable[[], Iterable[bytes | bytearray | memoryview]]

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> "FileSource":
        view = memoryview(data)
        return cls(size=len(view), open=lambda: (view,))

    def read_all(self) -> bytearray:
        """The whole file in one buffer (for a file small enough to embed in a message)."""
        buffer = bytearray(self.size)
        offset = 0
        for piece in self.open():
            buffer[offset : offset + len(piece)] = piece
            offset += len(piece)
        if offset != self.size:
            raise ValueError(f"The file gave {offset} bytes, not the {self.size} it was said to hold.")
        return buffer


class MultipartBody:
    """multipart/form-data with one file field, readable like a file (see the module docstring)."""

    def __init__(self, field: str, file_name: str, content_type: str, source: FileSource) -> None:
        self.boundary = binascii.hexlify(os.urandom(16)).decode("ascii")  # as urllib3's choose_boundary
        part = RequestField(name=field, data=b"", filename=file_name)
        part.make_multipart(content_type=content_type)
        self._head = f"--{self.boundary}\r\n".encode("latin-1") + part.render_headers().encode("utf-8")
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("latin-1")
        self._source = source
        self.length = len(self._head) + source.size + len(self._tail)
        self.seek(0)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.length

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only back to the start: the file's pieces are read again from their source."""
        if (offset, whence) != (0, 0):
            raise OSError("A multipart body can only be rewound to its start.")
        self._parts = self._all_parts()
        self._pending = memoryview(b"")
        self._position = 0
        return 0

    def _all_parts(self) -> Iterator[bytes | bytearray | memoryview]:
        yield self._head
        sent = 0
        for piece in self._source.open():
            sent += len(piece)
            if sent > self._source.size:
                raise ValueError(f"The file gave more than the {self._source.size} bytes it was said to hold.")
            yield piece
        if sent != self._source.size:
            raise ValueError(f"The file gave {sent} bytes, not the {self._source.size} it was said to hold.")
        yield self._tail

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all that is left when `size` < 0); b"" at the end."""
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._pending:
                piece = next(self._parts, None)
                if piece is None:
                    break
                self._pending = memoryview(piece)
                continue
            take = len(self._pending) if size < 0 else min(size - len(out), len(self._pending))
            out += self._pending[:take]
            self._pending = self._pending[take:]
        self._position += len(out)
        return bytes(out)
