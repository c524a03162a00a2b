"""HTTP/1.1 on a socket the fetcher connected itself: the request head, the response head, the body read
under a byte cap and a wall-clock deadline, and gzip/deflate decoding that cannot be made to allocate more
than the cap. Raw bytes are kept as on the wire for the WARC records.

Every problem is a ``Failure`` carrying the fetch outcome it maps to (corpus/fetcher.py lists them). A
response head is checked as it arrives (``read_head``): one that is not HTTP/1.x, is over 64 KiB, holds NUL
or bare CR bytes, or has an unusable Content-Length is ``bad_header``; non-ASCII bytes elsewhere in it (a
UTF-8 reason phrase, a raw UTF-8 ``Link:``) are allowed and kept as received.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

MAX_HEAD_BYTES = 64 * 1024
MAX_INTERIM = 16  # 1xx responses skipped before the final one


class Failure(Exception):
    def __init__(self, outcome: str, detail: str):
        super().__init__(detail)
        self.outcome, self.detail = outcome, " ".join(detail.split())


def os_failure(e: OSError, what: str) -> Failure:
    if isinstance(e, TimeoutError):
        return Failure("timeout", f"{what} timed out")
    return Failure("connection_error", f"{what}: {e.strerror or e}")


def decode_body(body: bytes, content_encoding: str, limit: int) -> tuple[bytes, bool]:
    """(body decoded from gzip/deflate and cut at limit, whether it was longer); holds at most limit+1 bytes.

    Raises ValueError for an unknown encoding and zlib.error for a corrupt stream.
    """
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body[:limit], len(body) > limit
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":  # RFC 9110 says zlib-wrapped; some servers send raw deflate
        zlib_header = len(body) > 1 and body[0] & 0x0F == 8 and (body[0] * 256 + body[1]) % 31 == 0
        wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
    else:
        raise ValueError(f"unsupported Content-Encoding {content_encoding!r}")
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    # concatenated gzip members
    while inflater.eof and inflater.unused_data[:2] == b"\x1f\x8b" and len(out) <= limit:
        rest, inflater = inflater.unused_data, zlib.decompressobj(wbits)
        out += inflater.decompress(rest, limit + 1 - len(out))
    return out[:limit], len(out) > limit


def media_type(content_type: str | None) -> str:
    """'text/html; charset=x' -> 'text/html'."""
    return (content_type or "").split(";")[0].strip().lower()


def looks_binary(body: bytes) -> bool:
    """NUL bytes in the first KiB: an image or archive, whatever the server claims."""
    return b"\x00" in body[:1024]


STATUS_LINE = re.compile(r"HTTP/\d(?:\.\d)? +(\d{3})(?: .*)?")
HEAD_END = re.compile(rb"\r?\n\r?\n")
LINE_END = re.compile(rb"\n")
FORBIDDEN_IN_HEAD = re.compile(rb"\x00|\r(?!\n)")  # RFC 9110 5.5, RFC 9112 2.2: reject, never guess
CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")  # ASCII digits only ("²".isdigit() is True), below 2**63


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers with lower-case names, first occurrence wins) from a raw response head."""
    lines = head.decode("latin-1").rstrip("\r\n").split("\n")
    match = STATUS_LINE.fullmatch(lines[0].rstrip("\r"))
    if not match:
        raise ValueError(f"malformed status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.rstrip("\r").partition(":")
        if sep and name.strip():
            headers.setdefault(name.strip().lower(), value.strip())
    return int(match.group(1)), headers


def header_text(value: str) -> str:
    """A header value from parse_head (Latin-1, byte for byte) as text: UTF-8 when its bytes are UTF-8, as
    warcio reads them back from the WARC record."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return value


def validate_head(head: bytes) -> tuple[int, dict[str, str]]:
    """parse_head for a head just received, with Content-Length reduced to one number; raises
    Failure('bad_header') for a malformed status line, NUL or bare CR bytes, or an unusable Content-Length
    (not a number, or several different ones)."""
    if forbidden := FORBIDDEN_IN_HEAD.search(head):
        what = "NUL" if forbidden.group() == b"\x00" else "bare CR"
        raise Failure("bad_header", f"{what} byte in the response head at {forbidden.start()}")
    try:
        status, headers = parse_head(head)
    except ValueError as e:
        raise Failure("bad_header", str(e)) from None
    lengths: set[str] = set()
    for line in head.decode("latin-1").split("\n")[1:]:
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "content-length":
            lengths.update(v.strip() for v in value.split(","))  # "10, 10" is allowed (RFC 9110 8.6)
    if lengths:
        [length, *others] = sorted(lengths)
        if others or not CONTENT_LENGTH.fullmatch(length):
            raise Failure("bad_header", f"bad Content-Length {', '.join(sorted(lengths))[:60]!r}")
        headers["content-length"] = length
    return status, headers


def numeric_ipv4(host: str) -> str | None:
    """The dotted IPv4 address a numeric host stands for, read as browsers and getaddrinfo read it
    (``2130706433``, ``0177.0.0.1``, ``0x7f.1`` are all 127.0.0.1: WHATWG URL "IPv4 parser"); None for a
    name. Raises ValueError for a host that ends in a number but is no address (``999999999999``)."""
    parts = host.removesuffix(".").split(".")
    if ":" in host or not re.fullmatch(r"[0-9]+|0[xX][0-9a-fA-F]*", parts[-1]):
        return None  # an IPv6 literal or a name
    if len(parts) > 4:
        raise ValueError(f"{host!r} has more than 4 numeric parts")
    numbers = [_ipv4_number(part, host) for part in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is out of the IPv4 range")
    value = numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str, host: str) -> int:
    if part[:2] in ("0x", "0X"):
        digits, base, valid = part[2:], 16, r"[0-9a-fA-F]*"
    elif len(part) > 1 and part.startswith("0"):
        digits, base, valid = part[1:], 8, r"[0-7]+"
    else:
        digits, base, valid = part, 10, r"[0-9]+"
    if not re.fullmatch(valid, digits) or len(digits) > 32:
        raise ValueError(f"{host!r}: {part!r} is not an IPv4 number")
    return int(digits, base) if digits else 0


@dataclass(frozen=True)
class Target:
    url: str  # scheme://host[:port]/path?query, no fragment, no userinfo
    scheme: str
    host: str  # ASCII (punycode), no brackets
    port: int
    host_header: str
    path: str  # request target


def parse_target(url: str) -> Target:
    """Split an http(s) URL into what a request needs; raises Failure('invalid_url')."""
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        host = numeric_ipv4(host) or host
    except (ValueError, UnicodeError) as e:
        raise Failure("invalid_url", f"unparseable URL {url!r}: {e}") from None
    if scheme not in ("http", "https"):
        raise Failure("invalid_url", f"not an http(s) URL: {url!r}")
    if not re.fullmatch(r"[a-z0-9._-]+|[0-9a-f:.]+", host):
        raise Failure("invalid_url", f"bad host in {url!r}")
    default = 80 if scheme == "http" else 443
    port = port or default
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == default else f"{bracketed}:{port}"
    path = quote(parts.path or "/", safe="!$%&'()*+,/:;=@~-._") + (
        "?" + quote(parts.query, safe="!$%&'()*+,/:;=?@~-._") if parts.query else ""
    )
    return Target(f"{scheme}://{host_header}{path}", scheme, host, port, host_header, path)


def build_request(target: Target, user_agent: str) -> bytes:
    lines = [
        f"GET {target.path} HTTP/1.1",
        f"Host: {target.host_header}",
        f"User-Agent: {user_agent}",
        "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
        "Accept-Encoding: gzip, deflate",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- one request on the wire --------------------------------------------------------------------------------


class Deadline:
    """The wall-clock cap of one fetch; ``at`` moves forward by the time spent waiting for a host's turn."""

    def __init__(self, seconds: float, clock: Callable[[], float]):
        self.clock, self.at = clock, clock() + seconds

    def remaining(self) -> float:
        return self.at - self.clock()


class Reader:
    """Buffered reads from a socket under a per-read timeout and the fetch's deadline."""

    def __init__(self, sock: socket.socket, read_timeout: float, deadline: Deadline):
        self.sock, self.read_timeout, self.deadline = sock, read_timeout, deadline
        self.buf = bytearray()

    def _fill(self) -> bool:
        """Read more into the buffer; False at end of stream."""
        remaining = self.deadline.remaining()
        try:
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(min(self.read_timeout, remaining))
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            if self.deadline.remaining() <= 0:
                raise Failure("timeout", "wall-clock cap (max_seconds) reached while reading") from None
            raise Failure("timeout", f"no data for {self.read_timeout:g} s (read timeout)") from None
        except OSError as e:
            raise os_failure(e, "reading the response") from None
        self.buf += data
        return bool(data)

    def read_until(
        self, end: re.Pattern[bytes], limit: int, what: str, too_long: str = "connection_error"
    ) -> bytes:
        """Bytes up to and including the first match of end (a response head, a chunk size line); a Failure
        with outcome too_long when there is none in the first limit bytes."""
        searched = 0  # the buffer before this is known not to hold a match (end is at most 4 bytes)
        while not (match := end.search(self.buf, searched)):
            if len(self.buf) > limit:
                raise Failure(too_long, f"{what} over {limit} bytes")
            searched = max(0, len(self.buf) - 3)
            if not self._fill():
                raise Failure("connection_error", f"connection closed inside the {what}")
        if match.end() > limit:  # one recv can bring the end of a too long head along
            raise Failure(too_long, f"{what} over {limit} bytes")
        line = bytes(self.buf[: match.end()])
        del self.buf[: match.end()]
        return line

    def read(self, n: int) -> bytes:
        """Up to n bytes; b"" at end of stream."""
        if not self.buf and not self._fill():
            return b""
        piece = bytes(self.buf[:n])
        del self.buf[:n]
        return piece


def read_head(reader: Reader) -> tuple[bytes, int, dict[str, str]]:
    """The final response head as received (interim 1xx responses skipped), its status and headers.

    Raises Failure: bad_header for what validate_head refuses, a head over MAX_HEAD_BYTES, more than
    MAX_INTERIM interim responses, or bytes that are not HTTP/1.x at all (an HTTP/0.9 body); the reader's
    timeout or connection_error when the head does not arrive whole.
    """
    for _ in range(MAX_INTERIM + 1):
        try:
            head = reader.read_until(HEAD_END, MAX_HEAD_BYTES, "response head", too_long="bad_header")
        except Failure:
            start = bytes(reader.buf[:5])
            if start and not b"HTTP/".startswith(start):
                raise Failure("bad_header", f"not an HTTP/1.x response: starts {start!r}") from None
            raise
        status, headers = validate_head(head)
        if not 100 <= status < 200:
            return head, status, headers
    raise Failure("bad_header", f"over {MAX_INTERIM} interim (1xx) responses")


def body_pieces(reader: Reader, status: int, headers: dict[str, str]) -> Iterator[bytes]:
    """The body's bytes, de-chunked, as they arrive."""
    if status in (204, 304):
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = reader.read_until(LINE_END, 4096, "chunk size line")
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise Failure("connection_error", f"bad chunk size line {line[:40]!r}") from None
            if size <= 0:
                return  # trailers are not read: the connection is closed anyway
            while size > 0:
                if not (piece := reader.read(size)):
                    raise Failure("connection_error", "connection closed inside a chunk")
                size -= len(piece)
                yield piece
            reader.read_until(LINE_END, 4096, "chunk end")
    elif (length := headers.get("content-length")) is not None:
        if not CONTENT_LENGTH.fullmatch(length):
            raise Failure("bad_header", f"bad Content-Length {length[:40]!r}")
        expected, got = int(length), 0
        while got < expected:
            if not (piece := reader.read(expected - got)):
                raise Failure("connection_error", f"incomplete body: {got} of {expected} bytes")
            got += len(piece)
            yield piece
    else:
        while piece := reader.read(1 << 16):
            yield piece


def read_body(
    reader: Reader, status: int, headers: dict[str, str], cap: int
) -> tuple[bytes, str | None, Failure | None]:
    """(body cut at cap, truncated, failure or None)."""
    body = bytearray()
    try:
        for piece in body_pieces(reader, status, headers):
            body += piece
            if len(body) > cap:
                return bytes(body[:cap]), "length", None
    except Failure as failure:
        return bytes(body), "time" if failure.outcome == "timeout" else "disconnect", failure
    return bytes(body), None, None
