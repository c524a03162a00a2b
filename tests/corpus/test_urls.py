import string
from dataclasses import dataclass, replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from corpus.urls import (
    InvalidURL,
    UnsupportedScheme,
    _is_tracking,
    canonicalize_url,
    domain_of,
    host_in,
    host_of,
    path_extension,
)

# --- examples ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Reddit-era URLs that are already canonical
        (
            "http://online.wsj.com/public/article/0,,SB111948406207267049-_s5eff_5SbJW3B_RdxwYLvU3s6c"
            "_20050723,00.html?mod=blogs",
            "http://online.wsj.com/public/article/0,,SB111948406207267049-_s5eff_5SbJW3B_RdxwYLvU3s6c"
            "_20050723,00.html?mod=blogs",
        ),
        (
            "http://www.wired.com/news/culture/0,1284,67982,00.html?tw=wn_tophead_4",
            "http://www.wired.com/news/culture/0,1284,67982,00.html?tw=wn_tophead_4",
        ),
        ("https://twitter.com/#!/user/status/123", "https://twitter.com/#!/user/status/123"),
        # whitespace, scheme and host case
        ("  \thttp://example.com/a\n", "http://example.com/a"),
        ("HTTPS://Example.COM/Path", "https://example.com/Path"),
        # host
        ("http://user:pass@example.com/", "http://example.com/"),
        ("http://us@er:p@ss@example.com/", "http://example.com/"),
        ("http://example.com./a", "http://example.com/a"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://BÜCHER.example/", "http://xn--bcher-kva.example/"),
        ("http://[2001:DB8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://[::1]/", "http://[::1]/"),
        ("http://my_host.example.com/", "http://my_host.example.com/"),
        # www. kept, http/https distinct
        ("http://www.example.com/a", "http://www.example.com/a"),
        # port
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com:08080/a", "http://example.com:8080/a"),
        ("http://example.com:/a", "http://example.com/a"),
        # path
        ("http://example.com", "http://example.com/"),
        ("http://example.com/", "http://example.com/"),
        ("http://example.com/a/", "http://example.com/a"),
        ("http://example.com/a//", "http://example.com/a"),
        ("http://example.com/a//b", "http://example.com/a//b"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/../../a", "http://example.com/a"),
        ("http://example.com/a/b/..", "http://example.com/a"),
        ("http://example.com/a/%2E%2E/b", "http://example.com/b"),
        ("http://example.com/a.b/c", "http://example.com/a.b/c"),
        # percent-encoding
        ("http://example.com/%7euser/%41%62", "http://example.com/~user/Ab"),
        ("http://example.com/a%2fb%2Fc", "http://example.com/a%2Fb%2Fc"),
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/caf\u00e9", "http://example.com/caf%C3%A9"),
        ("http://example.com/caf%c3%a9", "http://example.com/caf%C3%A9"),
        ('http://example.com/"<>\\^`{|}', "http://example.com/%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("http://example.com/a\x01b", "http://example.com/a%01b"),
        ("http://example.com/100%", "http://example.com/100%25"),
        ("http://example.com/%zz", "http://example.com/%25zz"),
        ("http://example.com/%2", "http://example.com/%252"),
        ("http://example.com/a?q=%26%3d%2f", "http://example.com/a?q=%26%3D%2F"),
        ("http://example.com/a?q=%7e%20x", "http://example.com/a?q=~%20x"),
        ("http://example.com/wiki/Foo_(bar)", "http://example.com/wiki/Foo_(bar)"),
        # &amp; from HTML-escaped dumps
        ("http://example.com/?b=2&amp;a=1", "http://example.com/?a=1&b=2"),
        ("http://example.com/?b=2&amp;amp;a=1", "http://example.com/?a=1&b=2"),
        ("http://example.com/?amp;a=1", "http://example.com/?a=1"),
        ("http://example.com/x&amp;y", "http://example.com/x&y"),
        # query
        ("http://example.com/?b=2&a=1", "http://example.com/?a=1&b=2"),
        ("http://example.com/?a=2&b=0&a=1", "http://example.com/?a=2&a=1&b=0"),
        ("http://example.com/?a=1&&b=2&", "http://example.com/?a=1&b=2"),
        ("http://example.com/?b=&a", "http://example.com/?a&b="),
        ("http://example.com/?q=a+b", "http://example.com/?q=a+b"),
        ("http://example.com/?", "http://example.com/"),
        ("http://example.com/?&&", "http://example.com/"),
        ("http://example.com/a?utm_source=reddit&utm_medium=social", "http://example.com/a"),
        ("http://example.com/a?UTM_Source=x&id=3&FBCLID=y&gclid", "http://example.com/a?id=3"),
        ("http://example.com/a?utm%5Fsource=x&id=3", "http://example.com/a?id=3"),
        ("http://example.com/a?id=3&_ga=1.2.3&mc_cid=x&mc_eid=y", "http://example.com/a?id=3"),
        ("http://example.com/a?utm=1&ref=x", "http://example.com/a?ref=x&utm=1"),
        # fragment
        ("http://example.com/a#section-2", "http://example.com/a"),
        ("http://example.com/a?x=1#", "http://example.com/a?x=1"),
        ("http://example.com/#!", "http://example.com/"),
        ("http://twitter.com/#!/user/./status/1/", "http://twitter.com/#!/user/status/1"),
        ("http://example.com/#!page=a%7e b#c", "http://example.com/#!page=a~%20b%23c"),
    ],
)
def test_canonicalize_url(raw: str, expected: str) -> None:
    assert canonicalize_url(raw) == expected


def test_distinct_forms_stay_distinct() -> None:
    forms = {
        canonicalize_url(u)
        for u in [
            "http://example.com/a",
            "https://example.com/a",
            "http://www.example.com/a",
            "http://example.com/A",
            "http://example.com/a?x",
            "http://example.com/a?x=",
            "http://example.com/a%2Fb",
            "http://example.com/a/b",
            "http://example.com/a//b",
            "http://example.com/#!a",
        ]
    }
    assert len(forms) == 10


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "ftp://example.com/f",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "example.com/a",
        "www.example.com",
        "//example.com/a",
        "file:///etc/passwd",
        "data:text/plain,x",
    ],
)
def test_unsupported_scheme(raw: str) -> None:
    with pytest.raises(UnsupportedScheme):
        canonicalize_url(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("http://", "no host"),
        ("http:///x", "no host in 'http:///x'"),
        ("http:example.com", "no host"),
        ("http://user@/x", "no host"),
        ("http://./", "no host"),
        ("http://example.com:abc/", "port"),
        ("http://example.com:99999/", "port"),
        ("http://example.com:0/", "port"),
        ("http://example.com:-1/", "port"),
        ("http://example.com:८०/", "port"),  # non-ASCII digits
        ("http://exa mple.com/", "host"),
        ("http://exa<mple.com/", "host"),
        ("http://example..com/", "host"),
        ("http://example.com../", "host"),
        ("http://[::1/", "IPv6"),
        ("http://[::1]x/", "IPv6"),
        ("http://[not-ipv6]/", "IPv6"),
        ("http://" + "é" * 70 + ".com/", "host"),
    ],
)
def test_invalid_url(raw: str, message: str) -> None:
    with pytest.raises(InvalidURL, match=message) as info:
        canonicalize_url(raw)
    assert not isinstance(info.value, UnsupportedScheme)


def test_errors_are_value_errors() -> None:
    assert issubclass(UnsupportedScheme, InvalidURL)
    assert issubclass(InvalidURL, ValueError)


def test_host_of_and_domain_of() -> None:
    assert host_of("http://www.example.com:8080/a?b#!c") == "www.example.com"
    assert host_of("http://[::1]:8080/") == "[::1]"
    assert domain_of("http://www.example.com/a") == "example.com"
    assert domain_of("http://www.www.example.com/") == "www.example.com"
    assert domain_of("http://wwwexample.com/") == "wwwexample.com"
    assert domain_of("https://i.imgur.com/x.jpg") == "i.imgur.com"
    assert domain_of(canonicalize_url("HTTP://WWW.Bücher.example:80")) == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("imgur.com", "imgur.com"),
        ("i.imgur.com", "imgur.com"),
        ("a.b.i.imgur.com", "imgur.com"),
        ("notimgur.com", None),
        ("imgur.com.evil.net", None),
        ("imgur.co", None),
        ("com", None),
        ("news.bbc.co.uk", "news.bbc.co.uk"),  # most specific entry wins
        ("sport.bbc.co.uk", "bbc.co.uk"),
        ("", None),
    ],
)
def test_host_in(host: str, expected: str | None) -> None:
    domains = frozenset({"imgur.com", "bbc.co.uk", "news.bbc.co.uk"})
    assert host_in(host, domains) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.com/a/b.JPG", "jpg"),
        ("http://example.com/a.b/c", ""),
        ("http://example.com/x.tar.gz", "gz"),
        ("http://example.com/", ""),
        ("http://example.com/.htaccess", ""),
        ("http://example.com/a.", ""),
        ("http://example.com/a.pdf?x=y.html", "pdf"),
        ("http://example.com/#!/a.png", ""),
        ("http://www.wired.com/news/culture/0,1284,67982,00.html?tw=wn_tophead_4", "html"),
    ],
)
def test_path_extension(url: str, expected: str) -> None:
    assert path_extension(url) == expected


# --- properties ----------------------------------------------------------------------------------

PATH_CHARS = string.ascii_letters + string.digits + "-._~!$'()*,;=:@"
KEY_CHARS = string.ascii_letters + string.digits + "-._~"
VALUE_CHARS = PATH_CHARS + "/?+"
# Escapes of characters that are not unreserved: canonical form keeps them.
ESCAPES = ["%2F", "%20", "%3F", "%25", "%C3%A9", "%26", "%3D"]
UNRESERVED = set(string.ascii_letters + string.digits + "-._~")
TRACKING = ["utm_source=reddit", "UTM_Campaign=x", "fbclid=IwAR0", "gclid", "_ga=1.2.3", "mc_eid=", "spm=a.b"]
DEFAULT_PORTS = {"http": 80, "https": 443}

Tokens = tuple[str, ...]


@dataclass(frozen=True)
class Parts:
    scheme: str
    labels: tuple[str, ...]
    port: int | None
    segments: tuple[Tokens, ...]
    params: tuple[tuple[Tokens, Tokens | None], ...]


def tokens(chars: str, min_size: int = 1) -> st.SearchStrategy[Tokens]:
    token = st.sampled_from(list(chars)) | st.sampled_from(ESCAPES)
    return st.lists(token, min_size=min_size, max_size=6).map(tuple)


segments = tokens(PATH_CHARS).filter(lambda t: "".join(t) not in (".", ".."))
labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
keys = st.text(KEY_CHARS, min_size=1, max_size=6).filter(lambda k: not _is_tracking(k))
values = st.none() | tokens(VALUE_CHARS, min_size=0)
params = st.lists(st.tuples(keys, values), max_size=5, unique_by=lambda kv: kv[0]).map(
    lambda kvs: tuple((tuple(k), v) for k, v in kvs)
)
parts = st.builds(
    Parts,
    scheme=st.sampled_from(["http", "https"]),
    labels=st.tuples(
        st.sampled_from(["", "www."]),
        st.lists(labels, min_size=1, max_size=3),
        st.sampled_from(["com", "org", "co.uk"]),
    ).map(lambda t: tuple((t[0] + ".".join([*t[1], t[2]])).split("."))),
    port=st.none() | st.integers(1, 65535).filter(lambda p: p not in (80, 443)),
    segments=st.lists(segments, max_size=4).map(tuple),
    params=params,
)


def render(p: Parts) -> str:
    url = f"{p.scheme}://{'.'.join(p.labels)}" + (f":{p.port}" if p.port else "")
    url += "".join("/" + "".join(seg) for seg in p.segments)
    pieces = ["".join(k) + ("" if v is None else "=" + "".join(v)) for k, v in p.params]
    return url + ("?" + "&".join(pieces) if pieces else "")


def joined(toks: Tokens | None) -> str | None:
    return None if toks is None else "".join(toks)


def random_case(text: str, draw) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


def variant_tokens(toks: Tokens, draw) -> str:
    """Percent-encode some unreserved characters and lower-case some existing escapes."""
    out = []
    for tok in toks:
        if tok in UNRESERVED and draw(st.booleans()):
            tok = random_case(f"%{ord(tok):02x}", draw)
        elif tok.startswith("%") and draw(st.booleans()):
            tok = tok.lower()
        out.append(tok)
    return "".join(out)


def render_variant(p: Parts, draw) -> str:
    url = random_case(p.scheme, draw) + "://"
    if draw(st.booleans()):
        url += "user:pw@"
    url += random_case(".".join(p.labels), draw)
    if p.port:
        url += f":{p.port}"
    elif draw(st.booleans()):
        url += f":{DEFAULT_PORTS[p.scheme]}"
    for seg in p.segments:
        url += "/" + draw(st.sampled_from(["", "./", "x/../", "./y/z/../../"])) + variant_tokens(seg, draw)
    url += draw(st.sampled_from(["", "/", "/.", "//", "/x/.."]))
    pieces = [
        variant_tokens(k, draw) + ("" if v is None else "=" + variant_tokens(v, draw)) for k, v in p.params
    ]
    pieces = draw(st.permutations(pieces))
    for extra in draw(st.lists(st.sampled_from(TRACKING + [""]), max_size=4)):
        pieces.insert(draw(st.integers(0, len(pieces))), extra)
    if pieces or draw(st.booleans()):
        url += "?" + "&".join(pieces)
    if draw(st.booleans()):
        url += "#" + draw(st.text().filter(lambda f: not f.startswith("!")))
    return url


# Raw text rich in the characters that matter to the rules.
NASTY_TOKENS = [*"/.%?&=#!+:@[] \taBé", "..", "%2e", "%2F", "%41", "%c3%a9", "&amp;", "amp;", "#!", "utm_x=1"]
nasty = st.lists(st.sampled_from(NASTY_TOKENS) | st.characters(), max_size=20).map("".join)
any_urls = (
    st.builds(render, parts)
    | st.builds(lambda s, a, r: f"{s}://{a}{r}", st.sampled_from(["http", "HTTPS"]), nasty, nasty)
    | st.builds(lambda s, h, r: f"{s}://{h}/{r}", st.sampled_from(["http", "https"]), labels, nasty)
)


@settings(max_examples=300, deadline=None)
@given(any_urls)
def test_idempotent(raw: str) -> None:
    try:
        once = canonicalize_url(raw)
    except InvalidURL:
        return
    assert canonicalize_url(once) == once


@settings(max_examples=200, deadline=None)
@given(parts, st.data())
def test_variants_collapse(p: Parts, data: st.DataObject) -> None:
    expected = canonicalize_url(render(p))
    for _ in range(3):
        variant = render_variant(p, data.draw)
        assert canonicalize_url(variant) == expected, variant


@settings(max_examples=200, deadline=None)
@given(parts, st.data())
def test_distinct_pages_stay_distinct(p: Parts, data: st.DataObject) -> None:
    change = data.draw(st.sampled_from(["path", "path case", "query", "host", "scheme", "www"]))
    if change == "path case":
        swapped = tuple(tuple(t if t.startswith("%") else t.swapcase() for t in seg) for seg in p.segments)
        other = replace(p, segments=swapped)
        assume(render(other) != render(p))
    elif change == "path":
        other = replace(p, segments=tuple(data.draw(st.lists(segments, max_size=4))))
        assume(render(other) != render(p))
    elif change == "query" and p.params:
        i = data.draw(st.integers(0, len(p.params) - 1))
        key, value = p.params[i]
        new_value = data.draw(values)
        assume(joined(new_value) != joined(value))
        other = replace(p, params=p.params[:i] + ((key, new_value),) + p.params[i + 1 :])
    elif change == "query":
        other = replace(p, params=((("k",), ("1",)),))
    elif change == "host":
        other = replace(p, labels=tuple(data.draw(st.lists(labels, min_size=2, max_size=4))))
        assume(other.labels != p.labels)
    elif change == "scheme":
        other = replace(p, scheme={"http": "https", "https": "http"}[p.scheme])
    else:
        other = replace(p, labels=p.labels[1:] if p.labels[0] == "www" else ("www", *p.labels))
    assert canonicalize_url(render(other)) != canonicalize_url(render(p))


def test_path_extension_stops_at_a_non_alphanumeric():
    assert path_extension("https://pbs.twimg.com/media/a.jpg:large") == "jpg"
