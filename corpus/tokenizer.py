"""Byte-level BPE tokenizer for releases: GPT-2's own vocabulary, or one trained the way GPT-2 describes it.

Both kinds are Hugging Face `tokenizers` objects with the same pipeline as GPT-2:

- pre-tokenization: `ByteLevel(add_prefix_space=False, use_regex=True)`, i.e. GPT-2's regex
  (`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`) splits the text into
  pre-tokens, each mapped to GPT-2's printable byte alphabet; merges never cross a pre-token boundary, so a
  token never mixes letters with digits, punctuation or a following whitespace run;
- model: BPE over the 256 byte symbols (every byte string is encodable, no unknown token);
- decoder: `ByteLevel` (bytes back to UTF-8 text).

End of text. `<|endoftext|>` (`EOT`) is a special token with the last id (`eot_id == vocab_size - 1`,
50256 in GPT-2's vocabulary). `encode` never adds it: the release stores documents without it and the loader
inserts `eot_id` between documents. The *string* "<|endoftext|>" inside a document is encoded as ordinary
text (`<`, `|`, `end`, ...), exactly like tiktoken's `encode_ordinary` / `encode(..., disallowed_special=())`,
so a web page cannot forge a document boundary (the Hugging Face tokenizer runs with
`encode_special_tokens = True`). `decode([eot_id])` gives back "<|endoftext|>".

`to_json` is the `tokenizer.json` text Hugging Face `tokenizers.Tokenizer.from_str` reads. Training is
deterministic: the same texts and parameters give the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np
from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

EOT = "<|endoftext|>"
DEFAULT_VOCAB_SIZE = 50257  # GPT-2's: 256 bytes + 50,000 merges + <|endoftext|>
MIN_VOCAB_SIZE = 257  # the 256 byte symbols + <|endoftext|>
FILENAME = "tokenizer.json"


class Tokenizer:
    """A byte-level BPE (Hugging Face tokenizers) with GPT-2's pre-tokenization and <|endoftext|>."""

    def __init__(self, hf: HFTokenizer):
        eot_id = hf.token_to_id(EOT)
        if eot_id is None:
            raise ValueError(f"tokenizer has no {EOT} token")
        hf.encode_special_tokens = True  # "<|endoftext|>" in text is text, never the special token
        self._hf = hf
        self.vocab_size: int = 1 + max(hf.get_vocab(with_added_tokens=True).values())  # ids are 0..size-1
        self.eot_id: int = eot_id

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no EOT added)."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of many texts, encoded in parallel by `tokenizers` (no EOT added)."""
        return [e.ids for e in self._hf.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Text of token ids; `eot_id` decodes to "<|endoftext|>"."""
        return self._hf.decode(list(ids), skip_special_tokens=False)

    def to_json(self) -> str:
        """The tokenizer.json text (compact, deterministic)."""
        return self._hf.to_str()

    def save(self, path: str) -> None:
        """Write tokenizer.json to `path`, or into `path` when it is a directory (written atomically)."""
        if os.path.isdir(path):
            path = os.path.join(path, FILENAME)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """A tokenizer from tokenizer.json text."""
        return cls(HFTokenizer.from_str(text))

    @classmethod
    def load(cls, path: str) -> Tokenizer:
        """Read tokenizer.json from `path`, or from `path`/tokenizer.json when it is a directory."""
        if os.path.isdir(path):
            path = os.path.join(path, FILENAME)
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def token_dtype(self) -> np.dtype:
        """The smallest unsigned dtype holding every id: uint16 when vocab_size <= 65536, else uint32."""
        return np.dtype(np.uint16) if self.vocab_size <= 1 << 16 else np.dtype(np.uint32)

    def __getstate__(self) -> str:
        # Pickled (e.g. into Beam workers) as its JSON: the Hugging Face pickle drops encode_special_tokens.
        return self.to_json()

    def __setstate__(self, state: str) -> None:
        self.__init__(HFTokenizer.from_str(state))

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, eot_id={self.eot_id})"


def _gpt2_pipeline(hf: HFTokenizer) -> HFTokenizer:
    """Set GPT-2's byte-level pre-tokenizer and decoder on `hf`."""
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    return hf


def _special(token: str) -> AddedToken:
    return AddedToken(token, special=True, normalized=False, single_word=False, lstrip=False, rstrip=False)


def gpt2_tokenizer(directory: str) -> Tokenizer:
    """GPT-2's own vocabulary from `directory`/encoder.json and vocab.bpe (ids equal tiktoken's)."""
    return _vocab_merges_tokenizer(directory, "encoder.json", "vocab.bpe", require_header=True)


def load_model_tokenizer(directory: str) -> Tokenizer:
    """The tokenizer of a model directory: tokenizer.json, else Hugging Face's GPT-2 files vocab.json +
    merges.txt, else OpenAI's encoder.json + vocab.bpe (the first set present wins)."""
    if os.path.isfile(os.path.join(directory, FILENAME)):
        return Tokenizer.load(directory)
    if os.path.isfile(os.path.join(directory, "vocab.json")):
        return _vocab_merges_tokenizer(directory, "vocab.json", "merges.txt", require_header=False)
    if os.path.isfile(os.path.join(directory, "encoder.json")):
        return gpt2_tokenizer(directory)
    expected = f"{FILENAME}, vocab.json + merges.txt or encoder.json + vocab.bpe"
    raise FileNotFoundError(f"{directory}: no tokenizer (expected {expected})")


def _vocab_merges_tokenizer(
    directory: str, vocab_name: str, merges_name: str, require_header: bool
) -> Tokenizer:
    """A GPT-2-style byte-level BPE from a vocabulary JSON and a merges file ("#version" header optional
    unless `require_header`: Hugging Face's merges.txt may lack it)."""
    encoder_path = os.path.join(directory, vocab_name)
    merges_path = os.path.join(directory, merges_name)
    for p in (encoder_path, merges_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: missing (a GPT-2 vocabulary needs {vocab_name} and {merges_name})")
    with open(encoder_path, encoding="utf-8") as f:
        vocab: dict[str, int] = json.load(f)
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    has_header = lines[0].startswith("#version")
    if require_header and not has_header:
        raise ValueError(f"{merges_path}: not a GPT-2 {merges_name} (no '#version' header)")
    merges = [tuple(line.split(" ")) for line in lines[1 if has_header else 0 :] if line]
    if any(len(m) != 2 for m in merges):
        raise ValueError(f"{merges_path}: a merge line is not two space-separated symbols")
    if EOT not in vocab:
        raise ValueError(f"{encoder_path}: no {EOT} entry")
    hf = _gpt2_pipeline(HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False)))
    hf.add_special_tokens([_special(EOT)])  # already in the vocabulary: keeps its id (50256)
    return Tokenizer(hf)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = 2
) -> Tokenizer:
    """Train a byte-level BPE on `texts` the way GPT-2 describes it; <|endoftext|> gets the last id.

    The base alphabet is all 256 bytes (whatever the texts contain), merges are learned inside GPT-2's
    pre-tokens only, and a pair must occur at least `min_frequency` times to be merged. `vocab_size` counts
    the bytes, the merges and EOT; it is an upper bound: when the texts support fewer merges the vocabulary
    is smaller (`Tokenizer.vocab_size` tells). Deterministic: same texts -> same tokenizer.json bytes.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be an integer >= {MIN_VOCAB_SIZE} (256 bytes + {EOT}), got {vocab_size!r}"
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency!r}")
    hf = _gpt2_pipeline(HFTokenizer(models.BPE(fuse_unk=False)))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,  # EOT is added after training so that it takes the last id
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    hf.train_from_iterator(texts, trainer=trainer)
    hf.add_special_tokens([_special(EOT)])
    return Tokenizer(hf)


def parse_spec(spec: str) -> tuple[str, str | int]:
    """Parse a `--tokenizer` value: "train:VOCAB" -> ("train", VOCAB), "gpt2:DIR" -> ("gpt2", DIR).

    A bare "train" means "train:50257". Anything else raises ValueError naming the accepted forms.
    """
    usage = f"expected 'train:VOCAB' (integer >= {MIN_VOCAB_SIZE}) or 'gpt2:DIR', got {spec!r}"
    if not isinstance(spec, str):
        raise ValueError(f"tokenizer spec: {usage}")
    kind, sep, arg = spec.partition(":")
    if kind == "train":
        if not sep:
            return "train", DEFAULT_VOCAB_SIZE
        if not arg.strip().isdigit() or int(arg) < MIN_VOCAB_SIZE:
            raise ValueError(f"tokenizer spec: {usage}")
        return "train", int(arg)
    if kind == "gpt2" and sep and arg:
        return "gpt2", arg
    raise ValueError(f"tokenizer spec: {usage}")
