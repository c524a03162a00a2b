"""GPT-1 and GPT-2: a decoder-only Transformer language model in the style of nanoGPT.

Two block layouts share everything else (learned position embeddings, GELU MLP, token embeddings tied with the
output layer):

- ``variant="gpt2"`` (Radford et al. 2019, section 2.3): pre-LayerNorm blocks, ``x + attn(ln_1(x))``, a
  final LayerNorm ``ln_f`` before the output layer, and residual projections initialised with std
  0.02/sqrt(2 * n_layer) (the paper scales residual layers at initialization by 1/sqrt(N), N the number of
  residual layers: two per block);
- ``variant="gpt1"`` (Radford et al. 2018, as in the original Transformer): post-LayerNorm blocks,
  ``ln_1(x + attn(x))``, no final LayerNorm, every weight initialised N(0, 0.02).

Weights are named like Hugging Face's ``GPT2LMHeadModel`` (``transformer.h.0.attn.c_attn.weight``, ...) so
that ``training.hf_format`` maps them one to one; the only difference is that ours are ``nn.Linear``
(out x in) where Hugging Face uses ``Conv1D`` (in x out).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from training.config import PRESETS, VARIANTS, GPTConfig, preset  # noqa: F401 - re-exported


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v of all heads
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # the tanh approximation GPT-1/GPT-2 used ("gelu_new" in HF)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.pre_ln = config.variant == "gpt2"
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_ln:  # GPT-2
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))
        x = self.ln_1(x + self.attn(x))  # GPT-1
        return self.ln_2(x + self.mlp(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
                if config.variant == "gpt2"
                else nn.Identity(),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying (Press & Wolf 2017), as GPT-1/GPT-2

        self.apply(self._init_weights)
        if config.variant == "gpt2":
            residual_std = 0.02 / math.sqrt(2 * config.n_layer)
            for block in self.transformer.h:
                nn.init.normal_(block.attn.c_proj.weight, mean=0.0, std=residual_std)
                nn.init.normal_(block.mlp.c_proj.weight, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab_size) for token ids `idx` (B, T); with `targets` (B, T) also the mean
        cross-entropy over every position whose target is not -1."""
        logits = self.lm_head(self.hidden_states(idx))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def hidden_states(self, idx: torch.Tensor) -> torch.Tensor:
        """The final hidden states h_L (B, T, n_embd) for token ids `idx` (B, T), after ln_f for GPT-2
        (the GPT-1 fine-tuning head reads them at the extract token)."""
        seq_len = idx.size(1)
        if seq_len > self.config.block_size:
            raise ValueError(
                f"sequence of length {seq_len} is longer than block_size {self.config.block_size}"
            )
        pos = torch.arange(seq_len, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (the tied wte/lm_head matrix counted once). `non_embedding` leaves out the
        token and position embeddings, as Kaplan et al. (2020) count N (85.1M for gpt2-124m)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def params_label(self) -> str:
        """The size every command prints: "0.18M parameters (0.10M non-embedding)"."""
        total, non_embedding = self.num_params(non_embedding=False), self.num_params()
        return f"{total / 1e6:.2f}M parameters ({non_embedding / 1e6:.2f}M non-embedding)"

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs (forward + backward) per token at context `seq_len`: PaLM's appendix B formula,
        6N + 12*L*H*Q*T.

        N counts every weight a token is multiplied by: the non-embedding parameters plus the output layer
        (the tied vocab_size x n_embd matrix; the position-embedding lookup is no matmul). 12*L*H*Q*T is the
        attention score and value matmuls (L layers, H heads, Q head size, T = seq_len). As in nanoGPT's MFU.
        """
        cfg = self.config
        n = self.num_params(non_embedding=True) + cfg.vocab_size * cfg.n_embd
        return 6.0 * n + 12.0 * cfg.n_layer * cfg.n_head * (cfg.n_embd // cfg.n_head) * seq_len

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: weight decay on matrices (matmul weights, embeddings), none on biases and
        LayerNorm gains/biases (the 1-D parameters)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to `idx` (B, T); the context is cropped to the last
        block_size tokens. temperature 0 takes the most likely token. Call `model.eval()` first."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.config.block_size :])
            logits = logits[:, -1, :]
            if temperature == 0:
                idx_next = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, -float("inf"))
                probs = F.softmax(logits, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx
