"""Canonical URLs, so that one page linked in many ways is fetched and counted once.

``canonicalize_url`` applies these rules:

1. Surrounding whitespace is stripped.
2. The scheme is lower-cased; only http and https are accepted (anything else, a missing
   scheme included, raises ``UnsupportedScheme``). http and https stay distinct.
3. Host: userinfo (``user:pass@``) dropped, lower-cased, one trailing dot removed, IDN encoded
   to punycode (stdlib ``idna`` codec). IPv6 literals are validated and kept in brackets,
   lower-cased (not re-compressed: ``ipaddress`` output differs between Python versions).
   An empty host, or one with characters outside ``a-z 0-9 - _ .``, raises ``InvalidURL``.
   ``www.`` is kept (``www.x.com`` and ``x.com`` can be different servers); ``domain_of``
   strips it for grouping and statistics.
4. Port: the default port (80 for http, 443 for https) and an empty port are dropped; a
   non-numeric or out-of-range port raises ``InvalidURL``; other ports are kept.
5. Percent-encoding in path, query and fragment: escapes of unreserved characters
   (``A-Z a-z 0-9 - . _ ~``) are decoded; other escapes are kept with upper-case hex
   (``%2f`` -> ``%2F``; ``%2F``, ``%26``, ``%3D`` are never decoded, they change meaning);
   space, controls, non-ASCII (as UTF-8 bytes) and ``"<>\\^`{|}#`` are encoded; a ``%`` that
   starts no valid escape (``%zz``, a lone ``%``) becomes ``%25``.
6. ``&amp;`` is decoded to ``&``: old Reddit dumps store URLs HTML-escaped.
7. Path: dot segments removed (RFC 3986 5.2.4), trailing slashes removed, an empty path
   becomes ``/``. Nothing else is collapsed (``//`` inside the path stays).
8. Query: split on ``&``; empty pieces and tracking parameters (listed in
   ``corpus/data/tracking_params.txt``, matched case-insensitively, ``utm_*`` style prefixes
   allowed) are dropped; the rest is sorted by key (stable: same-key order kept) and
   re-joined. Blank values, keys without ``=`` and ``+`` are kept as they are. No ``?`` is
   left when nothing remains.
9. The fragment is dropped, except a non-empty hashbang (``#!...``, AJAX-crawlable pages such
   as ``twitter.com/#!/user/status/1``), which is kept and normalized like the path.

``canonicalize_url`` is idempotent.
"""

import ipaddress
import posixpath
import re
import string
from importlib import resources

__all__ = [
    "InvalidURL",
    "UnsupportedScheme",
    "canonicalize_url",
    "domain_of",
    "host_in",
    "host_of",
    "path_extension",
    "without_userinfo",
]


class InvalidURL(ValueError):
    """The text cannot be made into a canonical http(s) URL."""


class UnsupportedScheme(InvalidURL):
    """The URL's scheme is missing or is not http/https."""


_DEFAULT_PORTS = {"http": 80, "https": 443}
# RFC 3986 appendix B; always matches.
_URL_RE = re.compile(r"(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.DOTALL)
_HOST_RE = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_HEX = frozenset(string.hexdigits)
_ALWAYS_ENCODED = frozenset(' "<>\\^`{|}#')


def _load_tracking_params() -> tuple[frozenset[str], tuple[str, ...]]:
    text = (resources.files("corpus") / "data" / "tracking_params.txt").read_text(encoding="utf-8")
    exact: set[str] = set()
    prefixes: list[str] = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip().lower()
        if entry == "*":
            raise ValueError("tracking_params.txt: a bare '*' would drop every parameter")
        if entry.endswith("*"):
            prefixes.append(entry[:-1])
        elif entry:
            exact.add(entry)
    return frozenset(exact), tuple(prefixes)


_TRACKING_EXACT, _TRACKING_PREFIXES = _load_tracking_params()


def _is_tracking(key: str) -> bool:
    key = key.lower()
    return key in _TRACKING_EXACT or key.startswith(_TRACKING_PREFIXES)


def _normalize_escapes(text: str) -> str:
    """Rule 5: decode unreserved escapes, upper-case the rest, encode what may not appear literally."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            hex_digits = text[i + 1 : i + 3]
            if len(hex_digits) == 2 and all(c in _HEX for c in hex_digits):
                decoded = chr(int(hex_digits, 16))
                out.append(decoded if decoded in _UNRESERVED else "%" + hex_digits.upper())
                i += 3
                continue
            out.append("%25")
        elif ch.isascii() and ch.isprintable() and ch not in _ALWAYS_ENCODED:
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
        i += 1
    return "".join(out)


def _unescape_amp(text: str) -> str:
    while "&amp;" in text:  # "&amp;amp;" comes from escaping twice
        text = text.replace("&amp;", "&")
    return text


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4 for a path that is empty or starts with "/"."""
    segments = path.split("/")[1:]
    out: list[str] = []
    for i, segment in enumerate(segments):
        is_last = i == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and out:
                out.pop()
            if is_last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _canonical_path(path: str) -> str:
    path = _unescape_amp(_normalize_escapes(path))
    return _remove_dot_segments(path).rstrip("/") or "/"


def _canonical_query(query: str) -> str:
    pieces: list[str] = []
    for piece in query.split("&"):
        piece = _normalize_escapes(piece)
        # "a=1&amp;b=2" split on "&" leaves "amp;b=2"; strip it here rather than before
        # splitting, so that sorting can never create a new "&amp;".
        while piece.startswith("amp;"):
            piece = piece[4:]
        if piece and not _is_tracking(piece.partition("=")[0]):
            pieces.append(piece)
    pieces.sort(key=lambda piece: piece.partition("=")[0])
    return "&".join(pieces)


def _canonical_fragment(fragment: str | None) -> str:
    if not fragment or not fragment.startswith("!") or fragment == "!":
        return ""
    content = fragment[1:]
    if content.startswith("/"):
        return "#!" + _canonical_path(content)
    return "#!" + _unescape_amp(_normalize_escapes(content))


def _split_authority(authority: str, raw: str) -> tuple[str, str]:
    """(host, port) of an authority, userinfo dropped; both as written."""
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        host, bracket, rest = host_port.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise InvalidURL(f"malformed IPv6 host in {raw!r}")
        return host + "]", rest[1:]
    host, _, port = host_port.partition(":")
    return host, port


def _canonical_host(host: str, raw: str) -> str:
    if host.startswith("["):
        literal = host[1:-1]
        try:
            if "%" in literal:  # zone ids are meaningless outside one machine
                raise ValueError(literal)
            ipaddress.IPv6Address(literal)
            return f"[{literal.lower()}]"
        except ValueError:
            raise InvalidURL(f"invalid IPv6 host {host!r} in {raw!r}") from None
    host = host.lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise InvalidURL(f"invalid international host {host!r} in {raw!r}: {error}") from None
    host = host.removesuffix(".")
    if not host:
        raise InvalidURL(f"no host in {raw!r}")
    if not _HOST_RE.fullmatch(host):
        raise InvalidURL(f"invalid host {host!r} in {raw!r}")
    return host


def _canonical_port(port: str, scheme: str, raw: str) -> str:
    if not port:
        return ""
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise InvalidURL(f"invalid port {port!r} in {raw!r}")
    return "" if int(port) == _DEFAULT_PORTS[scheme] else f":{int(port)}"


def canonicalize_url(raw: str) -> str:
    """The canonical form of `raw` (rules in the module docstring); raises InvalidURL."""
    scheme, authority, path, query, fragment = _URL_RE.fullmatch(raw.strip()).groups()
    if scheme is None:
        raise UnsupportedScheme(f"no scheme in {raw!r}")
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsupportedScheme(f"unsupported scheme {scheme!r} in {raw!r}")
    if authority is None:
        raise InvalidURL(f"no host in {raw!r}")
    host, port = _split_authority(authority, raw)
    canonical = f"{scheme}://{_canonical_host(host, raw)}{_canonical_port(port, scheme, raw)}"
    canonical += _canonical_path(path)
    query = _canonical_query(query or "")
    if query:
        canonical += "?" + query
    return canonical + _canonical_fragment(fragment)


def without_userinfo(raw: str) -> str:
    """`raw` as written, less any userinfo (``user:pass@``) in its authority: credentials never leave with a
    URL that is kept as posted. Everything else is left as it is."""
    match = _URL_RE.fullmatch(raw)
    authority = match.group(2)  # type: ignore[union-attr]
    if not authority or "@" not in authority:
        return raw
    start, end = match.span(2)  # type: ignore[union-attr]
    return raw[:start] + authority.rpartition("@")[2] + raw[end:]


def host_of(canonical_url: str) -> str:
    """Host of a canonical URL: lower-case, punycode, no port (IPv6 in brackets)."""
    authority = _URL_RE.fullmatch(canonical_url).group(2)
    if authority is None:
        raise InvalidURL(f"no host in {canonical_url!r}")
    return _split_authority(authority, canonical_url)[0]


def domain_of(canonical_url: str) -> str:
    """Host of a canonical URL with one leading "www." removed, for grouping and statistics."""
    return host_of(canonical_url).removeprefix("www.")


def host_in(host: str, domains: frozenset[str]) -> str | None:
    """The entry of `domains` that `host` equals or is a subdomain of, most specific first."""
    labels = host.split(".")
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if candidate in domains:
            return candidate
    return None


_EXTENSION_RE = re.compile(r"[a-z0-9]*")


def path_extension(canonical_url: str) -> str:
    """Lower-case extension of the last path segment, without the dot ("" if none); cut at the first
    character that is not a letter or digit (twitter's "/a.jpg:large" -> "jpg")."""
    path = _URL_RE.fullmatch(canonical_url).group(3)
    extension = posixpath.splitext(path.rpartition("/")[2])[1][1:].lower()
    return _EXTENSION_RE.match(extension).group()
