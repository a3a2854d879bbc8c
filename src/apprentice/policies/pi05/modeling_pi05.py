"""π0.5 (Physical Intelligence 2025, as lerobot 0.6.1 ports openpi): the robot state enters as text —
each dimension, quantile-normalized, discretized into 256 bins in the prompt — and the flow-matching
time conditions the expert through adaRMSNorm instead of being mixed into the action tokens.

Suffix tokens: `chunk_size` tokens `action_in_proj(x_t)`, one bidirectional block; the condition is
`silu(time_mlp_out(silu(time_mlp_in(time_embedding(t)))))`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.paligemma.config import PiConfig
from apprentice.policies.paligemma.flow import time_embedding
from apprentice.policies.paligemma.flow_policy import FlowCore, PiPolicy
from apprentice.policies.paligemma.prompt import batch_tasks, discretize_state, pi05_prompt
from apprentice.policies.pi0.modeling_pi0 import relative_config, tokenizer_step
from apprentice.policies.pi05.configuration_pi05 import PI05Config


class PI05Core(FlowCore):
    expert_adarms = True

    def __init__(self, config: PiConfig) -> None:
        super().__init__(config)
        self.time_mlp_in = nn.Linear(self.width, self.width)
        self.time_mlp_out = nn.Linear(self.width, self.width)

    def embed_suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        cfg = self.config
        action_emb = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))  # (B, T, W)
        time_emb = time_embedding(t, self.width, cfg.min_period, cfg.max_period).to(self.time_mlp_in.weight.dtype)
        cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(time_emb))))  # (B, W)
        bsize, length = action_emb.shape[:2]
        pad = torch.ones(bsize, length, dtype=torch.bool, device=action_emb.device)
        att = torch.zeros(bsize, length, dtype=torch.long, device=action_emb.device)
        att[:, 0] = 1  # the actions: one block after the prefix, bidirectional among themselves
        return action_emb, pad, att, cond


class PI05Policy(PiPolicy):
    config_class = PI05Config
    core_class = PI05Core

    def prompts(self, batch: dict[str, Any], state: Tensor) -> list[str]:
        # The normalized state before zero-padding to max_state_dim, as lerobot's processor sees it.
        bins = discretize_state(state.detach().float().cpu().numpy())
        return [pi05_prompt(task, bins[i]) for i, task in enumerate(batch_tasks(batch, state.shape[0]))]

    def processor_steps(self, pre: list[dict], post: list[dict]) -> tuple[list[dict], list[dict]]:
        """lerobot's make_pi05_pre_post_processors: rename, batch, relative, normalizer, state prompt,
        tokenizer, device; then unnormalizer, absolute, device."""
        rename, batch, device, normalizer = pre
        relative = {"registry_name": "relative_actions_processor", "config": relative_config(self.config)}
        state_prompt = {"registry_name": "pi05_prepare_state_tokenizer_processor_step", "config": {}}
        absolute = {"registry_name": "absolute_actions_processor", "config": {"enabled": False}}
        unnormalizer, device_post = post
        return (
            [rename, batch, relative, normalizer, state_prompt, tokenizer_step(self.config), device],
            [unnormalizer, absolute, device_post],
        )
