"""The GPT model: shapes, loss at init, tying, init scales, causality, block layouts, sizes, sampling."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.model import GPT, PRESETS, Block, GPTConfig, preset

V = 300


def tiny(**overrides) -> GPTConfig:
    return GPTConfig(
        **{"vocab_size": V, "block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 64, **overrides}
    )


def model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    return GPT(tiny(**overrides)).eval()


@pytest.mark.parametrize("variant", ["gpt1", "gpt2"])
def test_shapes_and_loss_is_ln_vocab_at_init(variant):
    gpt = model(variant=variant)
    idx = torch.randint(0, V, (3, 32), generator=torch.Generator().manual_seed(1))
    logits, loss = gpt(idx)
    assert logits.shape == (3, 32, V) and loss is None
    _, loss = gpt(idx, torch.roll(idx, -1, dims=1))
    assert loss.shape == () and abs(loss.item() - math.log(V)) < 0.1


def test_loss_ignores_targets_of_minus_one():
    gpt = model()
    idx = torch.randint(0, V, (2, 16), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(0, V, (2, 16), generator=torch.Generator().manual_seed(2))
    masked = targets.clone()
    masked[:, 8:] = -1
    logits, loss = gpt(idx, masked)
    expected = F.cross_entropy(logits[:, :8].reshape(-1, V), targets[:, :8].reshape(-1))
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, gpt(idx, targets)[1])


def test_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="block_size 32"):
        model()(torch.zeros(1, 33, dtype=torch.long))


def test_embeddings_are_tied_and_stay_tied_after_a_step():
    gpt = model().train()
    assert gpt.lm_head.weight is gpt.transformer.wte.weight
    optimizer = torch.optim.AdamW(gpt.optimizer_groups(0.1), lr=1e-2)
    idx = torch.randint(0, V, (2, 16))
    gpt(idx, idx)[1].backward()
    optimizer.step()
    assert torch.equal(gpt.lm_head.weight, gpt.transformer.wte.weight)
    assert "lm_head.weight" in gpt.state_dict() and "transformer.wte.weight" in gpt.state_dict()


def test_init_std_gpt2_scales_residual_projections_gpt1_does_not():
    n_layer = 8
    for variant, residual_std in [("gpt2", 0.02 / math.sqrt(2 * n_layer)), ("gpt1", 0.02)]:
        gpt = model(variant=variant, n_layer=n_layer, n_embd=128)
        for block in gpt.transformer.h:
            assert block.attn.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
            assert block.mlp.c_proj.weight.std().item() == pytest.approx(residual_std, rel=0.05)
            assert block.attn.c_attn.weight.std().item() == pytest.approx(0.02, rel=0.05)
            assert block.mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
            assert not block.attn.c_attn.bias.any() and not block.mlp.c_proj.bias.any()
        assert gpt.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert gpt.transformer.wpe.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_init_is_deterministic_under_a_seed():
    a, b, c = model(seed=3), model(seed=3), model(seed=4)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)


@pytest.mark.parametrize("variant", ["gpt1", "gpt2"])
def test_attention_is_causal(variant):
    gpt = model(variant=variant)
    idx = torch.randint(0, V, (1, 20), generator=torch.Generator().manual_seed(1))
    changed = idx.clone()
    changed[0, 12] = (idx[0, 12] + 1) % V
    before, after = gpt(idx)[0], gpt(changed)[0]
    assert torch.allclose(before[:, :12], after[:, :12], atol=1e-6)
    assert not torch.allclose(before[:, 12:], after[:, 12:], atol=1e-3)


def test_gpt2_block_is_pre_ln_gpt1_block_is_post_ln():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 64) * 3 + 1
    for variant in ("gpt1", "gpt2"):
        torch.manual_seed(1)
        block = Block(tiny(variant=variant)).eval()
        with torch.no_grad():  # non-trivial LayerNorm parameters, so that the order matters
            for ln in (block.ln_1, block.ln_2):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.uniform_(-0.5, 0.5)
        if variant == "gpt2":
            h = x + block.attn(block.ln_1(x))
            expected = h + block.mlp(block.ln_2(h))
        else:
            h = block.ln_1(x + block.attn(x))
            expected = block.ln_2(h + block.mlp(h))
        assert torch.allclose(block(x), expected, atol=1e-6), variant
    assert isinstance(model(variant="gpt2").transformer.ln_f, torch.nn.LayerNorm)
    assert "transformer.ln_f.weight" not in model(variant="gpt1").state_dict()


@pytest.mark.parametrize(
    "name, params, paper",
    [
        ("gpt2-124m", 124_439_808, None),
        ("gpt2-355m", 354_823_168, 345e6),
        ("gpt2-774m", 774_030_080, 762e6),
        ("gpt2-1558m", 1_557_611_200, 1542e6),
        ("gpt1", 116_534_784, 117e6),
    ],
)
def test_preset_sizes(name, params, paper):
    with torch.device("meta"):  # no memory for the weights
        gpt = GPT(preset(name))
    assert gpt.num_params(non_embedding=False) == params
    if paper:  # the papers' rounded counts
        assert abs(params - paper) / paper < 0.03
    cfg = gpt.config
    embeddings = cfg.vocab_size * cfg.n_embd + cfg.block_size * cfg.n_embd
    assert gpt.num_params() == params - embeddings


def test_gpt1_preset_is_the_papers():
    cfg = preset("gpt1")
    assert (cfg.variant, cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_embd) == (
        "gpt1",
        40478,
        512,
        12,
        768,
    )
    assert preset("gpt1", vocab_size=50257).vocab_size == 50257
    assert PRESETS["gpt1"].vocab_size == 40478  # overrides do not leak into the preset


def test_preset_errors_name_the_known_choices():
    with pytest.raises(ValueError, match="known: gpt2-124m, .*tiny, mini"):
        preset("gpt3")
    with pytest.raises(ValueError, match="unknown GPTConfig field.*n_layers"):
        preset("tiny", n_layers=3)
    with pytest.raises(ValueError, match="multiple of n_head"):
        preset("tiny", n_head=3)
    with pytest.raises(ValueError, match="unknown GPT variant 'gpt3'"):
        GPTConfig(variant="gpt3")


def test_flops_per_token_is_palm_formula():
    with torch.device("meta"):
        gpt = GPT(preset("gpt2-124m"))
    n = 85_056_000 + 50257 * 768  # non-embedding parameters + the (tied) output layer
    assert gpt.flops_per_token(1024) == 6 * n + 12 * 12 * 12 * 64 * 1024
    assert gpt.flops_per_token(2048) - gpt.flops_per_token(1024) == 12 * 12 * 12 * 64 * 1024


def test_generate_is_deterministic_with_a_seeded_generator():
    gpt = model()
    prompt = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(1))
    a = gpt.generate(prompt, 10, top_k=50, generator=torch.Generator().manual_seed(7))
    b = gpt.generate(prompt, 10, top_k=50, generator=torch.Generator().manual_seed(7))
    c = gpt.generate(prompt, 10, top_k=50, generator=torch.Generator().manual_seed(8))
    assert a.shape == (2, 15) and torch.equal(a[:, :5], prompt)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_generate_greedy_and_top_1_agree_and_context_is_cropped():
    gpt = model()
    prompt = torch.randint(0, V, (1, 40), generator=torch.Generator().manual_seed(1))  # > block_size 32
    greedy = gpt.generate(prompt, 4, temperature=0.0)
    assert torch.equal(greedy, gpt.generate(prompt, 4, top_k=1))
    expected = gpt(prompt[:, -32:])[0][0, -1].argmax()
    assert greedy[0, 40] == expected


def test_optimizer_groups_decay_matrices_only():
    gpt = model()
    decay, no_decay = gpt.optimizer_groups(0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in gpt.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert "transformer.wte.weight" in decayed and "transformer.wpe.weight" in decayed
    assert "transformer.h.0.attn.c_attn.weight" in decayed and "transformer.h.1.mlp.c_proj.weight" in decayed
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert all(n.endswith(".bias") or ".ln_" in n for n in not_decayed)
    assert "transformer.ln_f.weight" in not_decayed and "transformer.h.0.ln_1.weight" in not_decayed
    assert decayed.isdisjoint(not_decayed) and decayed | not_decayed == set(names.values())
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(gpt.parameters()))


def test_bias_false_has_no_biases():
    gpt = model(bias=False)
    assert not any(n.endswith(".bias") for n in gpt.state_dict())
    assert gpt.num_params() < model().num_params()
