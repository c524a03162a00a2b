import gzip
import io
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from corpus.warc import WarcError, WarcFileWriter, iter_responses, read_response

REQUEST = b"GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "warc"


def responses(name: str, **kwargs) -> list:
    path = FIXTURES / name
    with open(path, "rb") as stream:
        return list(iter_responses(stream, str(path), **kwargs))


@pytest.mark.parametrize(
    ("name", "count", "first_url"),
    [
        ("resiliparse_warcfile.warc.gz", 16, "http://003338.cn/l41/481397.html"),  # Common Crawl excerpt
        ("warcio_example.warc.gz", 1, "http://example.com/"),
        ("warcio_example.arc.gz", 1, "http://example.com/"),  # legacy ARC
    ],
)
def test_real_archives(name, count, first_url):
    got = responses(name)
    assert len(got) == count and got[0].url == first_url and got[0].status == 200
    assert all(r.size == len(r.body) > 0 for r in got)


def test_a_record_reads_back_from_its_offset_and_length():
    path = FIXTURES / "resiliparse_warcfile.warc.gz"
    data = path.read_bytes()
    for record in responses(path.name):
        again = read_response(data[record.offset : record.offset + record.length], str(path), record.offset)
        assert (again.url, again.body, again.content_type) == (record.url, record.body, record.content_type)


def test_body_cap_keeps_the_size():
    capped = responses("resiliparse_warcfile.warc.gz", max_body=100)
    assert all(len(r.body) <= 100 for r in capped) and capped[1].size == 104567


def test_truncated_archive_is_an_error_naming_the_file():
    with pytest.raises(
        WarcError, match=r"resiliparse_clipped\.warc\.gz: the record of http://www\.houstonpress"
    ):
        responses("resiliparse_clipped.warc.gz")


def test_not_a_warc(tmp_path):
    path = tmp_path / "x.warc.gz"
    path.write_bytes(gzip.compress(b"this is not a warc\n" * 10))
    with open(path, "rb") as stream, pytest.raises(WarcError, match="x.warc.gz: not a readable WARC"):
        list(iter_responses(stream, str(path)))


def test_written_exchanges_round_trip():
    out = io.BytesIO()
    writer = WarcFileWriter(out)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n\r\n"
    body = gzip.compress(b"<p>hello</p>")
    request = b"GET /a HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
    first = writer.write_exchange(
        "http://example.com/a", "93.184.216.34", "2026-11-22T05:00:00Z", request, head + body
    )
    second = writer.write_exchange(
        "http://example.com/b",
        "93.184.216.34",
        "2026-11-22T05:00:01Z",
        request,
        head + body[:5],
        truncated="length",
    )
    data = out.getvalue()
    got = list(iter_responses(io.BytesIO(data), "mem"))
    assert [(r.url, r.offset, r.length) for r in got] == [
        ("http://example.com/a", *first),
        ("http://example.com/b", *second),
    ]
    assert got[0].body == body and got[0].content_encoding == "gzip" and got[1].truncated == "length"
    records = list(ArchiveIterator(io.BytesIO(data)))
    assert [r.rec_type for r in records] == ["response", "request", "response", "request"]
    assert records[1].rec_headers.get_header("WARC-Concurrent-To") == records[0].rec_headers.get_header(
        "WARC-Record-ID"
    )
    assert records[0].rec_headers.get_header("WARC-IP-Address") == "93.184.216.34"


@pytest.mark.parametrize(
    "head",
    [
        "HTTP/1.1 200 ÓK\r\nContent-Type: text/html\r\n\r\n".encode(),  # a UTF-8 reason phrase
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=é\r\n\r\n".encode(),
        "HTTP/1.1 200 OK\r\nLink: <https://example.org/é.css>; rel=preload\r\n\r\n".encode(),
        b"HTTP/1.1 200 OK\r\nX-Junk: \xff\xfe\x80\r\n\r\n",  # bytes that are no UTF-8
        b"HTTP/1.1 200 OK\nContent-Type: text/html\n\n",  # bare LF line ends
    ],
)
def test_heads_are_archived_byte_for_byte(head):
    out = io.BytesIO()
    body = b"<p>caf\xc3\xa9</p>"
    offset, length = WarcFileWriter(out).write_exchange(
        "http://example.com/a", "93.184.216.34", "2026-11-22T05:00:00Z", REQUEST, head + body
    )
    data = out.getvalue()
    [block, request] = [r.raw_stream.read() for r in ArchiveIterator(io.BytesIO(data), no_record_parse=True)]
    assert (block, request) == (head + body, REQUEST)  # WARC 1.1 allows any bytes in the block
    for record in ArchiveIterator(io.BytesIO(data), check_digests="raise"):  # digests match the bytes kept
        assert record.http_headers is not None and record.raw_stream.read() in (body, b"")
    again = read_response(data[offset : offset + length], "mem", offset)
    assert (again.status, again.body) == (200, body)


def test_a_failed_write_leaves_the_file_as_it_was():
    out = io.BytesIO()
    writer = WarcFileWriter(out)
    head = b"HTTP/1.1 200 OK\r\n\r\n"
    writer.write_exchange("http://example.com/a", "93.184.216.34", "2026-11-22T05:00:00Z", REQUEST, head)
    before = out.getvalue()
    with pytest.raises(ValueError, match="no blank line"):
        writer.write_exchange("http://example.com/b", "93.184.216.34", "2026-11-22T05:00:00Z", REQUEST, b"x")
    assert out.getvalue() == before and len(list(iter_responses(io.BytesIO(before), "mem"))) == 1
