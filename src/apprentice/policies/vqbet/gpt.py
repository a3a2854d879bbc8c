"""The minGPT that VQ-BeT runs over observation and action-query tokens (after nanoGPT's model.py).

Names follow LeRobot's `vqbet_utils.GPT` (`transformer.wte/wpe/h/ln_f`, `lm_head`, the saved causal
mask `attn.bias`). Attention is written out, not fused, so outputs match LeRobot's bit for bit; the
sequence is short (n_obs_steps x 3 + n_action_pred_token - 1 = 17 tokens by default), so fusing
would buy little.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.config import PolicyError
from apprentice.policies.vqbet.configuration_vqbet import VQBeTConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, config: VQBeTConfig) -> None:
        super().__init__()
        d, block = config.gpt_hidden_dim, config.gpt_block_size
        self.c_attn = nn.Linear(d, 3 * d)  # query, key, value for all heads at once
        self.c_proj = nn.Linear(d, d)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.register_buffer("bias", torch.tril(torch.ones(block, block)).view(1, 1, block, block))
        self.n_head, self.n_embd = config.gpt_n_head, d

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, T)
        att = att.masked_fill(self.bias[:, :, :t, :t] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(self, config: VQBeTConfig) -> None:
        super().__init__()
        d = config.gpt_hidden_dim
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(config.dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Tokens (B, T, gpt_input_dim) -> features (B, T, gpt_output_dim), causally."""

    def __init__(self, config: VQBeTConfig) -> None:
        super().__init__()
        self.block_size = config.gpt_block_size
        d = config.gpt_hidden_dim
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Linear(config.gpt_input_dim, d),  # tokens are continuous: a Linear, not an Embedding
                "wpe": nn.Embedding(config.gpt_block_size, d),
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList([Block(config) for _ in range(config.gpt_n_layer)]),
                "ln_f": nn.LayerNorm(d),
            }
        )
        self.lm_head = nn.Linear(d, config.gpt_output_dim, bias=False)
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.gpt_n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.zeros_(module.bias)
            nn.init.ones_(module.weight)

    def forward(self, tokens: Tensor) -> Tensor:
        t = tokens.shape[1]
        if t > self.block_size:
            raise PolicyError(f"vqbet: {t} GPT tokens exceed gpt_block_size={self.block_size}")
        pos = torch.arange(0, t, dtype=torch.long, device=tokens.device).unsqueeze(0)
        x = self.transformer.drop(self.transformer.wte(tokens) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def decay_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(decayed, not decayed): Linear weights decay; biases, LayerNorm and Embedding weights do not.
        Each list is sorted by parameter name, as LeRobot's `configure_parameters` returns them."""
        decay, no_decay = set(), set()
        for mn, m in self.named_modules():
            for pn, _ in m.named_parameters(recurse=False):
                full = f"{mn}.{pn}" if mn else pn
                if pn.endswith("weight") and isinstance(m, nn.Linear):
                    decay.add(full)
                else:
                    no_decay.add(full)
        params = dict(self.named_parameters())
        return [params[n] for n in sorted(decay)], [params[n] for n in sorted(no_decay)]
