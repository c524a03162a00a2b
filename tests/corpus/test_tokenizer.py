"""The release tokenizer: GPT-2's vocabulary equals tiktoken's; a trained BPE behaves like GPT-2's."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from corpus.tokenizer import EOT, Tokenizer, gpt2_tokenizer, parse_spec, train_tokenizer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GPT2_DIR = FIXTURES / "gpt2_bpe"
TEXT_DIR = FIXTURES / "text"
ROOT = FIXTURES.parent.parent

# tiktoken's GPT-2 pattern (tiktoken_ext.openai_public.r50k_pat_str), equivalent to GPT-2's original regex.
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


def lambada() -> list[str]:
    with open(TEXT_DIR / "lambada_test.first30.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def wikitext() -> str:
    return (TEXT_DIR / "wikitext-2-raw-v1.test.first100lines.txt").read_text(encoding="utf-8")


EDGE_CASES = [
    "Hello world",
    "emoji 👍🏽 family 👨‍👩‍👧 flags 🇫🇷🇯🇵 ☃",
    "CJK 日本語のテキスト 中文字符 한국어",
    "combining e\u0301 vs \u00e9, Z\u0351\u0300\u0324lgo, a\u030a\u0323",
    "RTL: שלום עולם and مرحبا بالعالم \u200f mixed",
    "multiple   spaces,\ttabs\t\there,\n\nnewlines\r\n and trailing spaces   ",
    "   leading spaces and only whitespace:" + " \t\n " * 3,
    "\n",
    "    ",
    "contractions: it's, we'll, I'd, they've, you're, I'm, don't, IT'S, We'LL",
    "numbers 3.14159, 1,000,000, 2019-08-01, 0x1F, 12345678901234567890 ½ ² ٣",
    "the literal <|endoftext|> inside text, and <|endoftext|><|endoftext|>",
    EOT,
    "symbols ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./ — “quotes” ‘single’ … « » ©",
    "nul \x00 and control \x01\x1b[0m chars \x7f, surrogate-free astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "",
]


@pytest.fixture(scope="module")
def gpt2() -> Tokenizer:
    return gpt2_tokenizer(str(GPT2_DIR))


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's GPT-2 encoding built from the same two local files, with the network blocked."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache: read the files themselves, write nothing

    def no_network(*args, **kwargs):
        raise AssertionError("tiktoken tried to use the network")

    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(socket, "create_connection", no_network)
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=str(GPT2_DIR / "vocab.bpe"), encoder_json_file=str(GPT2_DIR / "encoder.json")
        )
        enc = tiktoken.Encoding(
            name="gpt2-local",
            pat_str=GPT2_PAT,
            mergeable_ranks=ranks,
            special_tokens={EOT: 50256},
            explicit_n_vocab=50257,
        )
    finally:
        mp.undo()
    return enc


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    return lambada() + wikitext().split("\n")


@pytest.fixture(scope="module")
def trained(corpus_texts) -> Tokenizer:
    return train_tokenizer(corpus_texts, vocab_size=600)


# --- GPT-2's own vocabulary ------------------------------------------------------------------------------


def test_gpt2_vocabulary(gpt2):
    assert gpt2.vocab_size == 50257
    assert gpt2.eot_id == 50256
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.token_dtype() == np.uint16


@pytest.mark.parametrize("name", ["lambada", "wikitext", "edge"])
def test_gpt2_matches_tiktoken(gpt2, tiktoken_gpt2, name):
    texts = {"lambada": lambada(), "wikitext": [wikitext(), *wikitext().split("\n")], "edge": EDGE_CASES}[
        name
    ]
    for text in texts:
        ids = gpt2.encode(text)
        assert ids == tiktoken_gpt2.encode_ordinary(text), text
        assert ids == tiktoken_gpt2.encode(text, disallowed_special=()), text
        assert gpt2.decode(ids) == text
    assert gpt2.encode_batch(texts) == tiktoken_gpt2.encode_ordinary_batch(texts)


def test_gpt2_normalization_variants_stay_distinct(gpt2):
    # No normalizer: NFC and NFD forms are different byte strings and encode differently, like GPT-2.
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert gpt2.encode(nfc) != gpt2.encode(nfd)
    assert gpt2.decode(gpt2.encode(nfd)) == nfd


def test_endoftext_in_text_is_text(gpt2, tiktoken_gpt2):
    text = f"before {EOT} after"
    ids = gpt2.encode(text)
    assert gpt2.eot_id not in ids  # a document cannot forge a boundary
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.encode(EOT) == [27, 91, 437, 1659, 5239, 91, 29]  # "<", "|", "end", "of", "text", "|", ">"
    assert gpt2.encode_batch([text, EOT]) == [ids, gpt2.encode(EOT)]
    # The id itself decodes to the marker; the loader inserts it between documents.
    assert gpt2.decode([gpt2.eot_id]) == EOT
    assert gpt2.decode(gpt2.encode("a") + [gpt2.eot_id] + gpt2.encode("b")) == f"a{EOT}b"
    assert tiktoken_gpt2.encode(EOT, allowed_special={EOT}) == [gpt2.eot_id]


def test_gpt2_json_round_trip(gpt2, tmp_path):
    text = gpt2.to_json()
    assert text == gpt2.to_json()
    back = Tokenizer.from_json(text)
    assert (back.vocab_size, back.eot_id) == (50257, 50256)
    assert back.to_json() == text
    sample = lambada()[0] + f" {EOT}"
    assert back.encode(sample) == gpt2.encode(sample)


def test_pickle_keeps_endoftext_as_text(gpt2, trained):
    # Beam pickles the tokenizer into its workers; "<|endoftext|>" in text must stay text there too.
    for tok in (gpt2, trained):
        back = pickle.loads(pickle.dumps(tok))
        assert back.to_json() == tok.to_json()
        assert back.eot_id not in back.encode(f"a {EOT}") + back.encode_batch([EOT])[0]


def test_gpt2_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.json"):
        gpt2_tokenizer(str(tmp_path))
    (tmp_path / "encoder.json").write_text(json.dumps({"a": 0}))
    (tmp_path / "vocab.bpe").write_text("no header\n")
    with pytest.raises(ValueError, match="#version"):
        gpt2_tokenizer(str(tmp_path))


# --- a trained byte-level BPE ----------------------------------------------------------------------------


def test_trained_vocab_size_and_eot(trained):
    assert trained.vocab_size == 600
    assert trained.eot_id == 599  # the last id, like GPT-2's 50256
    assert trained.decode([trained.eot_id]) == EOT
    assert trained.token_dtype() == np.uint16
    tokens = json.loads(trained.to_json())["model"]["vocab"]
    assert len(tokens) == 599 and max(tokens.values()) == 598


def test_trained_vocab_size_is_an_upper_bound():
    tok = train_tokenizer(["ab ab ab"], vocab_size=1000)
    assert tok.vocab_size < 1000 and tok.eot_id == tok.vocab_size - 1
    assert tok.decode(tok.encode("ab ab")) == "ab ab"


def test_trained_byte_fallback(trained):
    # Every byte is in the base alphabet: text never seen in training still encodes and round-trips.
    unseen = "Ωmega 👍🏽 日本語 \x00\x7f\t\r\n e\u0301 שלום 𝔘𝔫𝔦"
    ids = trained.encode(unseen)
    assert all(0 <= i < trained.eot_id for i in ids)
    assert trained.decode(ids) == unseen
    every_byte = bytes(range(256)).decode("latin-1")
    assert trained.decode(trained.encode(every_byte)) == every_byte
    for text in EDGE_CASES:
        assert trained.decode(trained.encode(text)) == text


def test_trained_endoftext_in_text_is_text(trained):
    ids = trained.encode(f"x {EOT} y")
    assert trained.eot_id not in ids
    assert trained.decode(ids) == f"x {EOT} y"


def _classes(token: str) -> set[str]:
    """Character classes of a decoded token: letter, number, space, other."""
    out = set()
    for ch in token:
        cat = unicodedata.category(ch)
        out.add("L" if cat[0] == "L" else "N" if cat[0] == "N" else "S" if ch.isspace() else "P")
    return out


def test_trained_merges_stay_inside_pretokens(trained, corpus_texts):
    # GPT-2's pre-tokens are ' ?letters', ' ?digits', ' ?other', whitespace runs and contractions, so a
    # token may start with one space but never has a letter next to a digit or punctuation, nor a space
    # after its first character.
    vocab = json.loads(trained.to_json())["model"]["vocab"]
    merged = [trained.decode([i]) for i in vocab.values() if i >= 256]
    assert len(merged) == 599 - 256
    for token in merged:
        body = token[1:] if token.startswith(" ") and len(token) > 1 and not token[1].isspace() else token
        if body.isspace():
            continue
        classes = _classes(body)
        assert len(classes) == 1 or body in {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}, repr(token)
        assert "S" not in classes, repr(token)
    # The corpus is full of "word ," and "word ." yet no token joins a word with what follows it.
    assert not any(t.rstrip(" ,.").isalpha() and t.rstrip() != t.rstrip(" ,.") for t in merged)


def test_trained_is_deterministic(corpus_texts, trained):
    again = train_tokenizer(iter(corpus_texts), vocab_size=600)
    assert again.to_json() == trained.to_json()
    # ... and in a fresh process (other hash seeds, other thread scheduling).
    code = (
        "import sys, json; from corpus.tokenizer import train_tokenizer;"
        "texts = json.load(sys.stdin); sys.stdout.write(train_tokenizer(texts, vocab_size=600).to_json())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "RAYON_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(corpus_texts),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    ).stdout
    assert out == trained.to_json()


def test_trained_min_frequency(corpus_texts):
    rare = train_tokenizer(["zq zq", *corpus_texts], vocab_size=5000, min_frequency=3)
    assert "zq" not in json.loads(rare.to_json())["model"]["vocab"]


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "tokenizer.json"
    trained.save(str(path))
    assert path.read_text(encoding="utf-8") == trained.to_json()
    back = Tokenizer.load(str(path))
    assert back.to_json() == trained.to_json()
    assert (back.vocab_size, back.eot_id) == (trained.vocab_size, trained.eot_id)
    text = wikitext()
    assert back.encode(text) == trained.encode(text)
    assert back.encode_batch(lambada()) == [trained.encode(t) for t in lambada()]
    # A directory means <dir>/tokenizer.json, the release layout.
    (tmp_path / "release").mkdir()
    trained.save(str(tmp_path / "release"))
    assert Tokenizer.load(str(tmp_path / "release")).to_json() == trained.to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release", "tokenizer.json"]  # no temp files left


def test_token_dtype_wide_vocab(trained):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers

    vocab = {c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    vocab.update({f"Ġw{i}": len(vocab) for i in range(70_000 - len(vocab))})
    hf = HFTokenizer(models.BPE(vocab=vocab, merges=[]))
    hf.add_special_tokens([EOT])
    wide = Tokenizer(hf)
    assert (wide.vocab_size, wide.eot_id) == (70_001, 70_000)
    assert wide.token_dtype() == np.uint32
    assert trained.token_dtype() == np.uint16


def test_train_rejects_bad_vocab_size():
    for bad in (0, 100, 256, "600", 600.0, True):
        with pytest.raises(ValueError, match="vocab_size"):
            train_tokenizer(["text"], vocab_size=bad)


# --- the --tokenizer flag --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("train:50257", ("train", 50257)),
        ("train:257", ("train", 257)),
        ("train:100000", ("train", 100000)),
        ("train", ("train", 50257)),
        ("gpt2:tests/fixtures/gpt2_bpe", ("gpt2", "tests/fixtures/gpt2_bpe")),
        ("gpt2:/abs/dir:with:colons", ("gpt2", "/abs/dir:with:colons")),
    ],
)
def test_parse_spec(spec, expected):
    assert parse_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", "gpt2", "gpt2:", "train:", "train:abc", "train:256", "train:-5", "train:1e5", "bpe:100", "GPT2:x"],
)
def test_parse_spec_rejects(spec):
    with pytest.raises(ValueError, match="train:VOCAB.*gpt2:DIR"):
        parse_spec(spec)
