"""Hugging Face format: export a GPT to, and import one from, a `config.json` + `model.safetensors` directory.

With the release's tokenizer the export also holds `tokenizer.json` and `tokenizer_config.json`, so that
``AutoTokenizer.from_pretrained`` gives the same ids as corpus.tokenizer: a generic
``PreTrainedTokenizerFast`` (GPT-1 exports too: our GPT-1 reads the release's byte-level BPE, not OpenAI's
GPT-1 tokenizer) with ``split_special_tokens`` so that the string "<|endoftext|>" in a text is encoded as
text, ``model_max_length`` the context, and ``<|endoftext|>`` as bos/eos (never added by ``encode``, as in
the release).

A gpt2-variant model becomes a ``GPT2LMHeadModel`` and a gpt1-variant model an ``OpenAIGPTLMHeadModel``
(post-LN blocks, no final LayerNorm, the same tanh GELU, which that class calls "gelu"). The mapping is one to
one:

- our names are Hugging Face's GPT-2 names; GPT-1 calls the embeddings ``tokens_embed``/``positions_embed``;
- Hugging Face's ``Conv1D`` stores weights as (in, out), ``nn.Linear`` as (out, in): matmul weights are
  transposed;
- ``lm_head.weight`` is tied to the token embedding and not written (``from_pretrained`` ties it back), as
  ``save_pretrained`` does;
- a model built with ``bias=False`` is exported with zero biases, which computes the same function.

transformers itself is not imported here (a development dependency only): the JSON files are written directly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from corpus.errors import InputError
from corpus.tokenizer import EOT, Tokenizer
from training.model import GPT, GPTConfig

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"  # sharded checkpoints (save_pretrained's max_shard_size)

MODEL_TYPES = {"gpt2": "gpt2", "gpt1": "openai-gpt"}  # our variant -> Hugging Face model_type
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "gpt1": "OpenAIGPTLMHeadModel"}
_GPT1_NAMES = {"wte": "tokens_embed", "wpe": "positions_embed"}
_CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def export_hf(
    model: GPT, out_dir: str, eot_id: int | None = None, tokenizer: Tokenizer | None = None
) -> None:
    """Write `model` to `out_dir` (config.json + model.safetensors, float32) for ``from_pretrained``, and
    `tokenizer` (tokenizer.json + tokenizer_config.json) for ``AutoTokenizer.from_pretrained`` when given.

    The tokenizer's <|endoftext|> id, else `eot_id`, else vocab_size - 1 (GPT-2's) becomes bos_token_id and
    eos_token_id. The directory is replaced atomically; an existing non-empty directory that is not an export
    is refused. The same weights give the same bytes. Pass the bare model (not a DDP/FSDP wrapper or
    torch.compile result).
    """
    cfg = model.config
    if tokenizer is not None:
        if eot_id is not None and eot_id != tokenizer.eot_id:
            raise ValueError(f"eot_id {eot_id} differs from the tokenizer's ({tokenizer.eot_id})")
        if tokenizer.vocab_size > cfg.vocab_size:
            raise ValueError(f"the tokenizer's {tokenizer.vocab_size} ids exceed vocab_size {cfg.vocab_size}")
        eot_id = tokenizer.eot_id
    eot = cfg.vocab_size - 1 if eot_id is None else eot_id
    if not 0 <= eot < cfg.vocab_size:
        raise ValueError(f"eot_id {eot} is outside the vocabulary (0..{cfg.vocab_size - 1})")
    out = Path(out_dir)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / CONFIG_FILE).exists())):
        raise InputError(f"{out}: exists and is not a Hugging Face model directory; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        save_file(_hf_tensors(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        config = json.dumps(_hf_config(cfg, eot), indent=2, sort_keys=True) + "\n"
        (tmp / CONFIG_FILE).write_text(config, encoding="utf-8")
        if tokenizer is not None:
            (tmp / TOKENIZER_FILE).write_text(tokenizer.to_json(), encoding="utf-8")
            tokenizer_config = json.dumps(_tokenizer_config(cfg), indent=2, sort_keys=True) + "\n"
            (tmp / TOKENIZER_CONFIG_FILE).write_text(tokenizer_config, encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def import_hf(directory: str) -> GPT:
    """A GPT (float32, tied embeddings) from a Hugging Face GPT-2 or OpenAI GPT directory: config.json plus
    model.safetensors (or a sharded model.safetensors.index.json), as save_pretrained or export_hf write."""
    root = Path(directory)
    config = _config_from_hf(_read_json(root / CONFIG_FILE), root / CONFIG_FILE)
    tensors = _read_tensors(root)
    state_dict = _state_dict_from_hf(tensors, config, root)
    with torch.device("meta"):  # no random init: every parameter comes from the file
        model = GPT(config)
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as e:  # shape mismatches between config.json and the weights
        raise InputError(f"{root / WEIGHTS_FILE}: does not match {CONFIG_FILE}: {e}") from None
    model.transformer.wte.weight = model.lm_head.weight  # assign=True gave them separate Parameters
    return model


def _hf_tensors(model: GPT) -> dict[str, torch.Tensor]:
    """Hugging Face tensor names -> float32 CPU tensors (Conv1D layout, zero biases where ours have none)."""
    tensors = {}
    for name, module in model.named_modules():
        if name == "lm_head":
            continue  # tied to transformer.wte
        if isinstance(module, nn.Embedding):
            tensors[f"{name}.weight"] = module.weight
        elif isinstance(module, nn.LayerNorm | nn.Linear):
            weight = module.weight.t() if isinstance(module, nn.Linear) else module.weight
            tensors[f"{name}.weight"] = weight
            tensors[f"{name}.bias"] = (
                module.bias if module.bias is not None else weight.new_zeros(weight.size(-1))
            )
    if model.config.variant == "gpt1":
        tensors = {_rename(k, _GPT1_NAMES): v for k, v in tensors.items()}
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}


def _hf_config(cfg: GPTConfig, eot_id: int) -> dict:
    common = {
        "architectures": [ARCHITECTURES[cfg.variant]],
        "model_type": MODEL_TYPES[cfg.variant],
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "attn_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "resid_pdrop": cfg.dropout,
        "initializer_range": 0.02,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "tie_word_embeddings": True,
        "dtype": "float32",
    }
    if cfg.variant == "gpt1":
        return {**common, "afn": "gelu"}  # OpenAIGPT's "gelu" is the tanh approximation
    return {
        **common,
        "n_ctx": cfg.block_size,
        "n_inner": None,  # 4 * n_embd
        "activation_function": "gelu_new",
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "use_cache": True,
    }


def _tokenizer_config(cfg: GPTConfig) -> dict:
    """tokenizer_config.json for a tokenizer.json written by corpus.tokenizer."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",  # tokenizer.json as is, whatever the model_type
        "model_max_length": cfg.block_size,
        "bos_token": EOT,
        "eos_token": EOT,
        "split_special_tokens": True,  # "<|endoftext|>" inside a text is text, as the release encodes it
        "clean_up_tokenization_spaces": False,  # decode gives back the text exactly
    }


def _replace_dir(new: Path, out: Path) -> None:
    if not out.exists():
        new.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(old / out.name)
    new.rename(out)
    shutil.rmtree(old)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def _config_from_hf(hf: dict, path: Path) -> GPTConfig:
    variant = {v: k for k, v in MODEL_TYPES.items()}.get(hf.get("model_type"))
    if variant is None:
        raise InputError(f"{path}: model_type {hf.get('model_type')!r} is not supported (gpt2 or openai-gpt)")
    unsupported = {  # features GPTConfig cannot express: field -> (value, what we compute)
        "activation_function": (hf.get("activation_function", "gelu_new"), ("gelu_new", "gelu_pytorch_tanh")),
        "afn": (hf.get("afn", "gelu"), ("gelu",)),
        "n_inner": (hf.get("n_inner"), (None, hf.get("n_embd", 0) * 4)),
        "scale_attn_weights": (hf.get("scale_attn_weights", True), (True,)),
        "scale_attn_by_inverse_layer_idx": (hf.get("scale_attn_by_inverse_layer_idx", False), (False,)),
        "add_cross_attention": (hf.get("add_cross_attention", False), (False,)),
        "tie_word_embeddings": (hf.get("tie_word_embeddings", True), (True,)),
    }
    for field, (value, supported) in unsupported.items():
        if value not in supported:
            raise InputError(f"{path}: {field}={value!r} is not supported (only {supported})")
    try:
        return GPTConfig(
            vocab_size=_int_field(hf, "vocab_size", path),
            block_size=_int_field(hf, "n_positions", path),
            n_layer=_int_field(hf, "n_layer", path),
            n_head=_int_field(hf, "n_head", path),
            n_embd=_int_field(hf, "n_embd", path),
            dropout=float(hf.get("resid_pdrop", 0.1)),
            bias=True,
            variant=variant,
            layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-5)),
        )
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None


def _int_field(hf: dict, name: str, path: Path) -> int:
    value = hf.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{path}: field {name!r} must be an integer, got {value!r}")
    return value


def _read_tensors(root: Path) -> dict[str, torch.Tensor]:
    if (root / WEIGHTS_FILE).exists():
        files = [root / WEIGHTS_FILE]
    elif (root / WEIGHTS_INDEX_FILE).exists():
        weight_map = _read_json(root / WEIGHTS_INDEX_FILE).get("weight_map")
        if not isinstance(weight_map, dict):
            raise InputError(f"{root / WEIGHTS_INDEX_FILE}: no 'weight_map' object")
        files = [root / name for name in sorted(set(weight_map.values()))]
    else:
        raise InputError(f"{root / WEIGHTS_FILE}: not found (only safetensors weights are read)")
    tensors = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    tensors[key] = f.get_tensor(key)
        except FileNotFoundError:
            raise InputError(f"{file}: not found") from None
        except (SafetensorError, OSError) as e:
            raise InputError(f"{file}: not a readable safetensors file ({e})") from None
    return tensors


def _state_dict_from_hf(tensors: dict[str, torch.Tensor], config: GPTConfig, root: Path) -> dict:
    """Our state dict from Hugging Face tensors, with or without the "transformer." prefix (the hub's gpt2
    has none) and ignoring the causal-mask buffers old checkpoints carry (h.N.attn.bias, attn.masked_bias)."""
    names = {v: k for k, v in _GPT1_NAMES.items()} if config.variant == "gpt1" else {}
    state_dict = {}
    for key, tensor in tensors.items():
        if key.endswith((".attn.bias", ".attn.masked_bias")) or key == "lm_head.weight":
            continue
        name = _rename(key.removeprefix("transformer."), names)
        if name.endswith(_CONV1D_WEIGHTS):
            tensor = tensor.t()
        state_dict[f"transformer.{name}"] = tensor.to(torch.float32).contiguous()

    weights = root / WEIGHTS_FILE
    wte = state_dict.get("transformer.wte.weight")
    if wte is None:
        raise InputError(f"{weights}: no token embedding ({'tokens_embed' if names else 'wte'}.weight)")
    lm_head = tensors.get("lm_head.weight")
    if lm_head is not None and not torch.equal(lm_head.to(torch.float32), wte):
        raise InputError(f"{weights}: lm_head.weight differs from the token embedding (only tied models)")
    state_dict["lm_head.weight"] = wte

    with torch.device("meta"):
        expected = set(GPT(config).state_dict())
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise InputError(f"{weights}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
    return state_dict


def _rename(name: str, renames: dict[str, str]) -> str:
    """Rename parts of a dotted name: "transformer.wte.weight" -> "transformer.tokens_embed.weight"."""
    return ".".join(renames.get(part, part) for part in name.split("."))
