"""WARC files with warcio: write what the fetcher exchanged, read responses from any archive, and read one
record back by (offset, length) as the fetch index points to it.

Records are written as separate gzip members (warcio's default), so an (offset, length) pair is enough to
read a record without touching the rest of the file, in our archives and in Common Crawl's alike.

HTTP heads are written byte for byte as received (WARC 1.1 allows any bytes in the record block): warcio
would otherwise parse and re-encode them, percent-encoding or failing on non-ASCII bytes (a UTF-8 reason
phrase, a raw UTF-8 ``Link:`` header) and normalizing line ends. An exchange's two records are built in
memory and written in one piece, so a failure leaves no partial record in the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpus.errors import InputError
from corpus.http_wire import HEAD_END

# Bodies read back from an archive are capped like fetched ones (Common Crawl cuts at 1 MiB anyway).
DEFAULT_MAX_BODY = 5 * 2**20


class WarcError(InputError):
    """An archive that cannot be read (not a WARC, truncated gzip member, ...); names the file."""


@dataclass(frozen=True)
class WarcResponse:
    """One HTTP response record: the body as stored (still content-encoded) and where the record lies."""

    url: str
    status: int | None
    content_type: str | None
    content_encoding: str | None
    date: str
    body: bytes  # the first max_body bytes
    size: int  # the whole payload's size
    truncated: str | None
    offset: int
    length: int


class _Counting:
    """A write-only file that counts what passes through (remote filesystems cannot always tell())."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.position = handle, 0

    def write(self, data: bytes) -> int:
        self.position += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


class _RawHead(StatusAndHeaders):
    """An HTTP head that warcio writes as the bytes given, never re-encoded."""

    def __init__(self, raw: bytes) -> None:
        super().__init__("", [], protocol="")
        self.headers_buff = raw

    def compute_headers_buffer(self, header_filter=None) -> None:
        pass  # headers_buff already holds the bytes as received

    def __bool__(self) -> bool:
        return True


def split_head(message: bytes) -> tuple[bytes, bytes]:
    """(head up to and including its blank line, body) of an HTTP message; ValueError without a head end."""
    end = HEAD_END.search(message)
    if end is None:
        raise ValueError("not an HTTP message: no blank line after the head")
    return message[: end.end()], message[end.end() :]


class WarcFileWriter:
    """Appends request/response record pairs to one open binary file (a `.warc.gz`)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.out = _Counting(handle)

    def write_exchange(
        self,
        url: str,
        ip: str,
        fetched_at: str,
        request: bytes,
        response: bytes,
        truncated: str | None = None,
    ) -> tuple[int, int]:
        """Write the response record (head + body exactly as received) and its request record; returns the
        response record's (offset, length). Raises ValueError when `response` has no HTTP head."""
        buffer = io.BytesIO()
        writer = WARCWriter(buffer, gzip=True)
        headers = {"WARC-Date": fetched_at, "WARC-IP-Address": ip}
        if truncated:
            headers["WARC-Truncated"] = truncated
        response_record = _record(writer, url, "response", response, headers)
        writer.write_record(response_record)
        length = buffer.tell()
        request_headers = {
            "WARC-Date": fetched_at,
            "WARC-IP-Address": ip,
            "WARC-Concurrent-To": response_record.rec_headers.get_header("WARC-Record-ID"),
        }
        writer.write_record(_record(writer, url, "request", request, request_headers))
        start = self.out.position
        self.out.write(buffer.getvalue())
        return start, length


def _record(writer: WARCWriter, url: str, kind: str, message: bytes, headers: dict[str, str]):
    """A request or response record whose HTTP head is kept as the bytes given."""
    head, body = split_head(message)
    return writer.create_warc_record(
        url,
        kind,
        payload=io.BytesIO(body),
        length=len(body),
        warc_headers_dict=headers,
        http_headers=_RawHead(head),
    )


def _response(record, body: tuple[bytes, int], offset: int, length: int) -> WarcResponse:
    http = record.http_headers
    status = http.get_statuscode() if http else None
    return WarcResponse(
        url=record.rec_headers.get_header("WARC-Target-URI") or "",
        status=int(status) if status and status.isdigit() else None,
        content_type=http.get_header("Content-Type") if http else None,
        content_encoding=http.get_header("Content-Encoding") if http else None,
        date=record.rec_headers.get_header("WARC-Date") or "",
        body=body[0],
        size=body[1],
        truncated=record.rec_headers.get_header("WARC-Truncated"),
        offset=offset,
        length=length,
    )


def _read_body(record, path: str, max_body: int) -> tuple[bytes, int]:
    """The payload up to max_body, and the payload's size; the rest is read and dropped, so a record cut
    short by a truncated file is noticed (warcio itself just stops). Must run before asking the iterator
    for the record's offset, which skips the record."""
    body = record.raw_stream.read(max_body)
    size = len(body)
    while chunk := record.raw_stream.read(2**16):
        size += len(chunk)
    if record.raw_stream.limit > 0:
        raise WarcError(
            f"{path}: the record of {record.rec_headers.get_header('WARC-Target-URI')} is cut short "
            f"({record.raw_stream.limit} bytes missing)"
        )
    return body, size


def iter_responses(stream: BinaryIO, path: str, max_body: int = DEFAULT_MAX_BODY) -> Iterator[WarcResponse]:
    """Every HTTP response record of an archive (WARC, WARC.gz, or legacy ARC), other records skipped."""
    iterator = ArchiveIterator(stream, arc2warc=True)
    try:
        for record in iterator:
            if record.rec_type != "response" or record.http_headers is None:
                continue
            body = _read_body(record, path, max_body)
            iterator.read_to_end(record)
            yield _response(record, body, iterator.get_record_offset(), iterator.get_record_length())
    except (ArchiveLoadFailed, EOFError, OSError, ValueError) as err:
        raise WarcError(f"{path}: not a readable WARC ({err})") from None


def read_response(data: bytes, path: str, offset: int, max_body: int = DEFAULT_MAX_BODY) -> WarcResponse:
    """The response record in `data` (the bytes at [offset, offset + len(data)) of the archive at `path`)."""
    try:
        for record in ArchiveIterator(io.BytesIO(data), arc2warc=True):
            if record.rec_type == "response":
                return _response(record, _read_body(record, path, max_body), offset, len(data))
    except (ArchiveLoadFailed, EOFError, OSError, ValueError) as err:
        raise WarcError(f"{path}@{offset}: not a readable WARC record ({err})") from None
    raise WarcError(f"{path}@{offset}: no response record there")
