"""multipart/form-data for model uploads: a pure encoder and an incremental parser.

The reference uploads a model as `-F data=<params JSON> -F file=@model`. A model may be
gigabytes, so the parser is fed the body as it arrives and hands each part's bytes to a
sink as soon as they cannot be the start of a boundary; nothing but a part's small
headers and a boundary-length tail is ever held. Fields other than files are bounded
(`max_field_bytes` together), as are headers and the number of parts, so a hostile body
cannot grow memory. No I/O here: the route feeds it and the sinks write.

With `keep_frame`, the parser also keeps every byte of the body that is not a file
part's content (boundaries, part headers, fields, epilogue: bounded like them) and where
the file's content was: `signed_body(digest)` is then the body with the file's content
replaced by its hex SHA-256, which is what an upload that declares its file's digest
signs (docs/modelstore.md, "Signing uploads").
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

Sink = Callable[[memoryview], None]
# the header by which an upload declares its file part's SHA-256 (hex), which it signs
DIGEST_HEADER = "X-Model-Sha256"


class MultipartError(ValueError):
    """A body that is not the multipart/form-data it claims to be."""


def new_boundary() -> str:
    return "fedstats-" + secrets.token_hex(16)


def boundary_of(content_type: str | None) -> str | None:
    """The boundary of a `multipart/form-data; boundary=...` Content-Type, else None."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        return None
    m = re.search(r'boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))', content_type)
    return (m.group(1) or m.group(2)) if m else None


def encode_fields(boundary: str, fields: list[tuple[str, bytes, str]]) -> bytes:
    """Leading non-file parts: (name, value, content type) each."""
    out = bytearray()
    for name, value, ctype in fields:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n").encode()
        out += value + b"\r\n"
    return bytes(out)


def encode_file_head(boundary: str, name: str = "file", filename: str = "model") -> bytes:
    safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()


def encode_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


_DISPOSITION = re.compile(r'(\w+)="([^"]*)"')


def _delim_prefix_at_end(data: bytes | memoryview, delim: bytes) -> int:
    """The length of the longest end of `data` that is a proper prefix of `delim` (every
    delimiter starts with CR, so only the CRs among its last bytes are candidates)."""
    tail = bytes(data[max(0, len(data) - len(delim) + 1):])
    at = tail.find(b"\r")
    while at >= 0:
        if delim.startswith(tail[at:]):
            return len(tail) - at
        at = tail.find(b"\r", at + 1)
    return 0


class MultipartParser:
    """Feed a body in pieces; `on_file(name, filename) -> Sink` receives file parts' bytes,
    other parts are collected in `fields` (name -> bytes)."""

    def __init__(self, boundary: str, on_file: Callable[[str, str], Sink],
                 max_field_bytes: int = 1 << 20, max_parts: int = 16,
                 max_header_bytes: int = 16 << 10, keep_frame: bool = False) -> None:
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._on_file = on_file
        self.fields: dict[str, bytes] = {}
        self.files: list[str] = []
        self._max_field, self._max_parts, self._max_header = (
            max_field_bytes, max_parts, max_header_bytes)
        self._field_total = 0
        self._parts = 0
        # The body starts with the boundary without the CRLF before it: pretend one came.
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"
        self._sink: Sink | None = None
        self._field: bytearray | None = None
        self._name = ""
        # the non-file bytes (the pretended CRLF first) and the file content's place
        self._frame: bytearray | None = bytearray() if keep_frame else None
        self._max_frame = max_field_bytes + (max_parts + 2) * max_header_bytes
        self.file_at: int | None = None

    @property
    def done(self) -> bool:
        return self._state == "end"

    def signed_body(self, digest: str) -> bytes:
        """The body as an upload that declares its file's digest signs it: every byte but
        the file part's content, which is replaced by `digest` (its hex SHA-256)."""
        assert self._frame is not None, "signed_body of a parser without keep_frame"
        frame = self._frame
        if self.file_at is None:
            return bytes(frame[2:])
        return bytes(frame[2:self.file_at]) + digest.encode("ascii") + bytes(
            frame[self.file_at:])

    def _framed(self, data: bytes | bytearray | memoryview) -> None:
        frame = self._frame
        if frame is not None and data:
            if len(frame) + len(data) > self._max_frame:
                raise MultipartError(f"the multipart body holds over {self._max_frame} "
                                     "bytes besides its file")
            frame += data

    def feed(self, data: bytes | memoryview) -> None:
        if self._state == "end":
            self._framed(data)  # what a signature over the body covers
            return  # the epilogue is ignored, as RFC 2046 says
        if self._state == "body" and len(data) >= 2 * len(self._delim) and self._pass(data):
            return
        self._buf += data
        while self._step():
            pass

    def _pass(self, data: bytes | memoryview) -> bool:
        """Inside a part, hand `data` on without copying it into the buffer when no
        delimiter starts in the held tail or in `data` (the common case: the middle of a
        model); False, having done nothing, otherwise.

        Between feeds the buffer holds at most `len(delim) - 1` bytes (what could be the
        start of a delimiter), so a delimiter starting in it ends within the first
        `len(delim) - 1` bytes of `data`. Of `data`'s end only what could begin a
        delimiter (a prefix of it) is held back as the new tail: for a model's bytes
        nearly always nothing, so each received chunk goes on whole, one piece."""
        delim = self._delim
        if bytes(data).find(delim) >= 0 if isinstance(data, memoryview) else \
                data.find(delim) >= 0:
            return False
        tail = self._buf
        if tail and (bytes(tail) + bytes(data[:len(delim) - 1])).find(delim) >= 0:
            return False
        if tail:
            self._emit(memoryview(bytes(tail)))
        view = memoryview(data)
        held = _delim_prefix_at_end(data, delim)
        self._emit(view[: len(data) - held])
        self._buf = bytearray(view[len(data) - held:])
        return True

    def close(self) -> None:
        """Check the body ended with the closing boundary."""
        if self._state != "end":
            raise MultipartError("the multipart body ends before its closing boundary")

    # -- the machine -----------------------------------------------------------------
    def _step(self) -> bool:
        buf, delim = self._buf, self._delim
        if self._state == "preamble":
            i = buf.find(delim)
            if i < 0:
                if len(buf) > self._max_header:
                    raise MultipartError("no multipart boundary where the body starts")
                return False
            self._framed(buf[: i + len(delim)])
            del buf[: i + len(delim)]
            self._state = "after_delim"
            return True
        if self._state == "after_delim":
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = "end"
                self._framed(buf)
                buf.clear()
                return False
            if buf[:2] != b"\r\n":
                raise MultipartError("malformed multipart boundary line")
            self._framed(b"\r\n")
            del buf[:2]
            self._state = "headers"
            return True
        if self._state == "headers":
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                if len(buf) > self._max_header:
                    raise MultipartError("multipart part headers are too long")
                return False
            self._framed(buf[: i + 4])
            self._begin_part(bytes(buf[:i]))
            del buf[: i + 4]
            self._state = "body"
            return True
        # body: everything before a possible delimiter goes to the part
        i = buf.find(delim)
        if i >= 0:
            self._emit(memoryview(buf)[:i])
            self._framed(delim)
            del buf[: i + len(delim)]
            self._end_part()
            self._state = "after_delim"
            return True
        keep = len(delim) - 1
        if len(buf) > keep:
            self._emit(memoryview(buf)[: len(buf) - keep])
            del buf[: len(buf) - keep]
        return False

    def _begin_part(self, raw: bytes) -> None:
        self._parts += 1
        if self._parts > self._max_parts:
            raise MultipartError(f"more than {self._max_parts} multipart parts")
        disposition = None
        for line in raw.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                disposition = value
        if disposition is None or "form-data" not in disposition.lower():
            raise MultipartError("a multipart part without Content-Disposition: form-data")
        params = dict(_DISPOSITION.findall(disposition))
        name = params.get("name")
        if not name:
            raise MultipartError("a multipart part without a name")
        self._name = name
        if "filename" in params:
            self.files.append(name)
            if self._frame is not None and self.file_at is None:
                self.file_at = len(self._frame)
            self._sink = self._on_file(name, params["filename"])
            self._field = None
        else:
            self._sink = None
            self._field = bytearray()

    def _emit(self, data: memoryview) -> None:
        if not data:
            return
        if self._sink is not None:
            self._sink(data)
            return
        assert self._field is not None
        self._field_total += len(data)
        if self._field_total > self._max_field:
            raise MultipartError(f"form fields over {self._max_field} bytes")
        self._field += data
        self._framed(data)

    def _end_part(self) -> None:
        if self._field is not None:
            self.fields[self._name] = bytes(self._field)
        self._sink = None
        self._field = None
