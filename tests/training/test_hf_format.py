"""Hugging Face export/import: logits match transformers' GPT2LMHeadModel / OpenAIGPTLMHeadModel both ways,
and the exported tokenizer files give AutoTokenizer the release tokenizer's ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    OpenAIGPTConfig,
    OpenAIGPTLMHeadModel,
)

from corpus.errors import InputError
from corpus.tokenizer import EOT, Tokenizer, gpt2_tokenizer, train_tokenizer
from training.hf_format import export_hf, import_hf
from training.model import GPT, GPTConfig

V, CTX = 300, 64
HF_CLASSES = {"gpt2": GPT2LMHeadModel, "gpt1": OpenAIGPTLMHeadModel}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial values everywhere (biases and LayerNorms included), so a misplaced tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)


def small_gpt(variant: str = "gpt2", seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    gpt = GPT(
        GPTConfig(vocab_size=V, block_size=CTX, n_layer=2, n_head=2, n_embd=64, variant=variant, **overrides)
    )
    randomize(gpt, seed)
    return gpt.eval()


def tokens(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (2, CTX), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("variant, bias", [("gpt2", True), ("gpt2", False), ("gpt1", True)])
def test_export_loads_in_transformers_with_the_same_logits(tmp_path, variant, bias):
    gpt = small_gpt(variant, bias=bias)
    export_hf(gpt, str(tmp_path / "hf"), eot_id=7)
    hf, info = HF_CLASSES[variant].from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    assert hf.config.eos_token_id == hf.config.bos_token_id == 7
    with torch.no_grad():
        assert torch.allclose(gpt(tokens())[0], hf(tokens()).logits, atol=1e-4)
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["hf"]  # no temporary directory left behind


def test_export_defaults_eot_to_the_last_id(tmp_path):
    export_hf(small_gpt(), str(tmp_path / "hf"))
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["eos_token_id"] == V - 1 and config["model_type"] == "gpt2" and config["n_positions"] == CTX
    assert "lm_head.weight" not in load_file(
        tmp_path / "hf" / "model.safetensors"
    )  # tied, as save_pretrained


@pytest.mark.parametrize("variant", ["gpt2", "gpt1"])
def test_import_of_save_pretrained_gives_the_same_logits(tmp_path, variant):
    torch.manual_seed(0)
    if variant == "gpt2":
        hf = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=CTX, n_embd=64, n_layer=2, n_head=2))
    else:
        hf = OpenAIGPTLMHeadModel(
            OpenAIGPTConfig(vocab_size=V, n_positions=CTX, n_embd=64, n_layer=2, n_head=2)
        )
    randomize(hf, 0)
    hf.save_pretrained(tmp_path / "hf")
    gpt = import_hf(str(tmp_path / "hf")).eval()
    assert gpt.config.variant == variant and gpt.config.block_size == CTX
    assert gpt.lm_head.weight is gpt.transformer.wte.weight
    assert gpt.num_params(non_embedding=False) == hf.num_parameters()
    with torch.no_grad():
        assert torch.allclose(gpt(tokens())[0], hf.eval()(tokens()).logits, atol=1e-4)


def test_import_reads_hub_style_names_and_mask_buffers(tmp_path):
    """The hub's gpt2 checkpoint has no "transformer." prefix and carries h.N.attn.bias mask buffers."""
    gpt = small_gpt()
    export_hf(gpt, str(tmp_path / "hf"))
    weights = tmp_path / "hf" / "model.safetensors"
    hub = {k.removeprefix("transformer."): v for k, v in load_file(weights).items()}
    hub["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, CTX, CTX))
    hub["h.0.attn.masked_bias"] = torch.tensor(-1e4)
    save_file({k: v.half() if k.startswith("h.1.") else v for k, v in hub.items()}, weights)  # fp16 too
    imported = import_hf(str(tmp_path / "hf"))
    assert imported.transformer.h[1].mlp.c_fc.weight.dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(gpt(tokens())[0], imported(tokens())[0], atol=1e-2)


@pytest.mark.parametrize("variant", ["gpt2", "gpt1"])
def test_round_trip_and_byte_identical_reexport(tmp_path, variant):
    gpt = small_gpt(variant)
    export_hf(gpt, str(tmp_path / "a"))
    export_hf(small_gpt(variant), str(tmp_path / "b"))  # same seed, another model object
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    imported = import_hf(str(tmp_path / "a"))
    assert imported.config == gpt.config
    assert set(imported.state_dict()) == set(gpt.state_dict())
    assert all(torch.equal(v, imported.state_dict()[k]) for k, v in gpt.state_dict().items())


def test_export_replaces_a_previous_export_but_not_other_directories(tmp_path):
    out = tmp_path / "hf"
    export_hf(small_gpt(seed=0), str(out))
    (out / "tokenizer.json").write_text("{}")
    export_hf(small_gpt(seed=1), str(out))
    assert torch.equal(import_hf(str(out)).transformer.wte.weight, small_gpt(seed=1).transformer.wte.weight)
    assert not (out / "tokenizer.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(InputError, match="notes: exists and is not a Hugging Face model directory"):
        export_hf(small_gpt(), str(tmp_path / "notes"))
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def exported(tmp_path: Path) -> Path:
    export_hf(small_gpt(), str(tmp_path / "hf"))
    return tmp_path / "hf"


def edit_config(directory: Path, **fields) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **fields}))


def test_import_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"missing/config.json: not found"):
        import_hf(str(tmp_path / "missing"))

    d = exported(tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(InputError, match=r"hf/config.json: not readable JSON"):
        import_hf(str(d))

    d = exported(tmp_path)
    edit_config(d, model_type="llama")
    with pytest.raises(InputError, match=r"config.json: model_type 'llama' is not supported"):
        import_hf(str(d))

    d = exported(tmp_path)
    edit_config(d, activation_function="relu")
    with pytest.raises(InputError, match=r"config.json: activation_function='relu' is not supported"):
        import_hf(str(d))

    d = exported(tmp_path)
    edit_config(d, n_head=3)
    with pytest.raises(InputError, match=r"config.json: n_embd \(64\) must be a multiple of n_head \(3\)"):
        import_hf(str(d))

    d = exported(tmp_path)
    edit_config(d, n_layer="2")
    with pytest.raises(InputError, match=r"config.json: field 'n_layer' must be an integer"):
        import_hf(str(d))


def test_import_weight_errors_name_the_file(tmp_path):
    d = exported(tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"hf/model.safetensors: not found"):
        import_hf(str(d))

    d = exported(tmp_path)
    (d / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match=r"hf/model.safetensors: not a readable safetensors file"):
        import_hf(str(d))

    d = exported(tmp_path)
    edit_config(d, n_layer=3)
    with pytest.raises(InputError, match=r"model.safetensors: missing tensors \['transformer.h.2"):
        import_hf(str(d))

    d = exported(tmp_path)
    edit_config(d, n_positions=32)
    with pytest.raises(InputError, match=r"model.safetensors: does not match config.json"):
        import_hf(str(d))

    d = exported(tmp_path)
    tensors = load_file(d / "model.safetensors")
    save_file({**tensors, "lm_head.weight": tensors["transformer.wte.weight"] + 1}, d / "model.safetensors")
    with pytest.raises(InputError, match=r"lm_head.weight differs from the token embedding"):
        import_hf(str(d))


def test_import_reads_sharded_checkpoints(tmp_path):
    gpt = small_gpt()
    export_hf(gpt, str(tmp_path / "hf"))
    d = tmp_path / "hf"
    tensors = load_file(d / "model.safetensors")
    (d / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, d / file)
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert torch.equal(import_hf(str(d)).transformer.h[1].ln_2.bias, gpt.transformer.h[1].ln_2.bias)


def real_texts() -> list[str]:
    """Web-like English (LAMBADA passages) and WikiText lines, with the literal "<|endoftext|>" mixed in."""
    lambada = FIXTURES / "text" / "lambada_test.first30.jsonl"
    passages = [json.loads(line)["text"] for line in lambada.read_text(encoding="utf-8").splitlines()]
    wiki = (FIXTURES / "text" / "wikitext-2-raw-v1.test.first100lines.txt").read_text(encoding="utf-8")
    forged = [f"{passages[0]}{EOT}{passages[1]}", f"{EOT} at the start, twice {EOT}{EOT} and <|end", EOT]
    return [*passages, *wiki.split("\n\n"), wiki, *forged, "  leading spaces\t\r\n", "café 東京 🙂"]


@pytest.fixture(scope="module")
def release_tokenizers() -> dict[str, Tokenizer]:
    """GPT-2's own vocabulary (50,257 tokens) and a small one trained the way the release trains one."""
    return {
        "gpt2": gpt2_tokenizer(str(FIXTURES / "gpt2_bpe")),
        "trained": train_tokenizer(real_texts(), vocab_size=500),
    }


@pytest.mark.parametrize("variant", ["gpt2", "gpt1"])
@pytest.mark.parametrize("vocabulary", ["gpt2", "trained"])
def test_exported_tokenizer_encodes_like_the_release_tokenizer(
    tmp_path, release_tokenizers, variant, vocabulary
):
    ours = release_tokenizers[vocabulary]
    gpt = GPT(
        GPTConfig(vocab_size=ours.vocab_size, block_size=CTX, n_layer=1, n_head=2, n_embd=16, variant=variant)
    )
    export_hf(gpt, str(tmp_path / "hf"), tokenizer=ours)
    theirs = AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path / "hf")) is HF_CLASSES[variant]

    texts = real_texts()
    assert [theirs(text)["input_ids"] for text in texts] == [ours.encode(text) for text in texts]
    assert theirs(texts)["input_ids"] == ours.encode_batch(texts)  # batched, and nothing added
    assert theirs(EOT)["input_ids"] != [ours.eot_id]  # the string is text, as in the release
    assert theirs.decode(ours.encode(texts[0])) == texts[0]
    assert theirs.decode([ours.eot_id]) == EOT
    assert theirs.eos_token == theirs.bos_token == EOT
    assert theirs.eos_token_id == theirs.bos_token_id == ours.eot_id == gpt.config.vocab_size - 1
    assert theirs.model_max_length == CTX
    long_text = max(texts, key=len)  # all of the WikiText sample: far more than CTX tokens
    assert len(ours.encode(long_text)) > CTX
    assert theirs(long_text, truncation=True)["input_ids"] == ours.encode(long_text)[:CTX]


def test_tokenizer_files_are_byte_identical_and_the_eot_comes_from_the_tokenizer(
    tmp_path, release_tokenizers
):
    tokenizer = release_tokenizers["trained"]
    padded = (
        tokenizer.vocab_size + 12
    )  # a model vocabulary larger than the tokenizer's: EOT is not its last id
    gpt = GPT(GPTConfig(vocab_size=padded, block_size=CTX, n_layer=1, n_head=2, n_embd=16))
    for name in ("a", "b"):
        export_hf(gpt, str(tmp_path / name), tokenizer=tokenizer)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["eos_token_id"] == config["bos_token_id"] == tokenizer.eot_id != padded - 1
    assert Tokenizer.load(str(tmp_path / "a")).encode("the city") == tokenizer.encode("the city")
    with pytest.raises(ValueError, match="differs from the tokenizer's"):
        export_hf(gpt, str(tmp_path / "c"), eot_id=7, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="exceed vocab_size"):
        export_hf(gpt, str(tmp_path / "c"), tokenizer=release_tokenizers["gpt2"])
