import bz2
import gzip
import io
import lzma

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.dumps import DumpError, compression_of, iter_dump_lines, iter_lines, unreadable_dump
from tests.conftest import SAMPLE

REAL_ZST = SAMPLE / "RS_v2_2005-07.shared.ndjson.zst"


def real_lines() -> list[bytes]:
    with open(REAL_ZST, "rb") as handle:
        return zstandard.ZstdDecompressor().decompressobj().decompress(handle.read()).splitlines()


COMPRESSORS = {
    "RS.jsonl": lambda data: data,
    "RS.jsonl.gz": lambda data: gzip.compress(data, mtime=0),
    "RS.bz2": bz2.compress,
    "RS.xz": lzma.compress,
    "RS.zst": lambda data: zstandard.ZstdCompressor(level=3).compress(data),
}


def read_all(path: str, data: bytes, **kwargs) -> list:
    return list(iter_dump_lines(io.BytesIO(data), path, **kwargs))


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_every_format_gives_the_real_lines(name):
    lines = real_lines()
    data = COMPRESSORS[name](b"\n".join(lines) + b"\n")
    got = read_all(name, data)
    assert [line.data for line in got] == lines
    assert [line.number for line in got] == list(range(1, len(lines) + 1))


def test_compression_by_suffix():
    assert compression_of("RS_2017-11.zst") == "zstd"
    assert compression_of("x.ndjson.ZST") == "zstd"
    assert compression_of("x.jsonl.gz") == "gzip"
    assert compression_of("x.jsonl") == "none"


@pytest.mark.parametrize("name", ["RS.jsonl.gz", "RS.bz2", "RS.xz", "RS.zst"])
def test_truncated_stream_is_an_error_naming_the_file(name):
    data = COMPRESSORS[name](b"\n".join(real_lines()) + b"\n")
    with pytest.raises(DumpError, match=rf"^{name}: corrupt or truncated"):
        read_all(name, data[: len(data) // 2])


def test_an_unopenable_dump_is_one_line_naming_it(tmp_path):
    directory = IsADirectoryError(21, "Is a directory", str(tmp_path))
    hint = f"name the dumps inside it, e.g. '{tmp_path}/*'"
    message = str(unreadable_dump(f"{tmp_path}/", directory))
    assert message == f"{tmp_path}/: cannot read the dump (Is a directory; {hint})"
    denied = PermissionError(13, "Permission denied", "RS.zst")
    assert str(unreadable_dump("RS.zst", denied)) == "RS.zst: cannot read the dump (Permission denied)"


def test_real_zst_truncated_mid_frame():
    data = REAL_ZST.read_bytes()
    with pytest.raises(DumpError, match="RS_v2_2005-07"):
        read_all(str(REAL_ZST), data[:-100])


def test_long_window_zst_needs_max_window():
    # Pushshift compressed with --long=31; a plain decompressor refuses windows above 128 MiB.
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=30)
    out = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False) as writer:
        writer.write(b'{"id": "a"}\n' * 1000)
    data = out.getvalue()
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert len(read_all("RS.zst", data)) == 1000


def test_concatenated_zst_frames():
    compress = zstandard.ZstdCompressor().compress
    data = compress(b"a\nb\n") + compress(b"c\n")
    assert [line.data for line in read_all("RS.zst", data)] == [b"a", b"b", b"c"]


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_empty_file(name):
    assert read_all(name, b"") == []
    assert read_all(name, COMPRESSORS[name](b"")) == []


def test_multibyte_character_split_across_blocks_and_reads():
    # A 4-byte UTF-8 character straddling the block boundary (and the 1 MiB decompression read size).
    emoji = "\N{GRINNING FACE}".encode()
    prefix = b'{"title": "' + b"x" * (2**20 - 13)
    line = prefix + emoji + b'"}'
    assert len(prefix) < 2**20 < len(prefix) + len(emoji)
    data = zstandard.ZstdCompressor().compress(line + b"\nnext\n")
    for num_splits in (1, 2):
        got = [
            line
            for split in range(num_splits)
            for line in read_all("RS.zst", data, split=split, num_splits=num_splits, block_bytes=2**20)
        ]
        assert sorted(got, key=lambda x: x.number)[0].data.decode("utf-8").endswith('\N{GRINNING FACE}"}')


def test_ten_megabyte_line():
    big = b'{"id": "big", "selftext": "' + b"y" * (10 * 2**20) + b'"}'
    data = zstandard.ZstdCompressor().compress(b"small\n" + big + b"\nlast\n")
    got = read_all("RS.zst", data)
    assert [(line.number, len(line.data), line.too_long) for line in got] == [
        (1, 5, False),
        (2, len(big), False),
        (3, 4, False),
    ]
    capped = read_all("RS.zst", data, max_line_bytes=2**20, block_bytes=2**20)
    assert [(line.number, line.too_long) for line in capped] == [(1, False), (2, True), (3, False)]
    assert len(capped[1].data) <= 200


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    block_bytes=st.integers(1, 64),
    num_splits=st.integers(1, 5),
    trailing_newline=st.booleans(),
)
def test_splits_partition_the_lines(lines, block_bytes, num_splits, trailing_newline):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    expected = list(enumerate(data.split(b"\n"), start=1))
    if expected and expected[-1][1] == b"" and data.endswith(b"\n") or data == b"":
        expected = expected[:-1]
    got = [
        (line.number, line.data)
        for split in range(num_splits)
        for line in iter_lines(io.BytesIO(data), split, num_splits, block_bytes=block_bytes)
    ]
    assert sorted(got) == [(n, d.rstrip(b"\r")) for n, d in expected]
