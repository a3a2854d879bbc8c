"""π0 (Black et al. 2024, openpi's PI0Pytorch as lerobot 0.6.1 ports it): PaliGemma reads the cameras and
the task; a Gemma-300M expert, attending to it layer by layer, turns the robot state and a noisy action
chunk into the flow-matching velocity.

Suffix tokens: one state token (`state_proj`) in its own attention block, then `chunk_size` action tokens,
each `action_time_mlp_out(silu(action_time_mlp_in([action_in_proj(x_t), time_embedding(t)])))`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.paligemma.config import PiConfig
from apprentice.policies.paligemma.flow import time_embedding
from apprentice.policies.paligemma.flow_policy import FlowCore, PiPolicy
from apprentice.policies.paligemma.prompt import batch_tasks, pi0_prompt
from apprentice.policies.pi0.configuration_pi0 import PI0Config


class PI0Core(FlowCore):
    def __init__(self, config: PiConfig) -> None:
        super().__init__(config)
        w = self.width
        self.state_proj = nn.Linear(config.max_state_dim, w)
        self.action_time_mlp_in = nn.Linear(2 * w, w)
        self.action_time_mlp_out = nn.Linear(w, w)

    def embed_suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        cfg = self.config
        state_emb = self.state_proj(state.to(self.state_proj.weight.dtype))[:, None]  # (B, 1, W)
        action_emb = self.action_in_proj(x_t.to(self.action_in_proj.weight.dtype))  # (B, T, W)
        time_emb = time_embedding(t, self.width, cfg.min_period, cfg.max_period).to(action_emb.dtype)
        fused = torch.cat([action_emb, time_emb[:, None].expand_as(action_emb)], dim=2)
        action_time = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(fused)))
        embs = torch.cat([state_emb, action_time.to(state_emb.dtype)], dim=1)
        bsize, length = embs.shape[:2]
        pad = torch.ones(bsize, length, dtype=torch.bool, device=embs.device)
        # State: a block of its own; actions: one more block (they see the state, it does not see them).
        att = torch.zeros(bsize, length, dtype=torch.long, device=embs.device)
        att[:, :2] = 1
        return embs, pad, att, None


class PI0Policy(PiPolicy):
    config_class = PI0Config
    core_class = PI0Core

    def prompts(self, batch: dict[str, Any], state: Tensor) -> list[str]:
        return [pi0_prompt(task) for task in batch_tasks(batch, state.shape[0])]

    def processor_steps(self, pre: list[dict], post: list[dict]) -> tuple[list[dict], list[dict]]:
        """lerobot's make_pi0_pre_post_processors order: rename, batch, newline, tokenizer, device, relative,
        normalizer; then unnormalizer, absolute, device."""
        rename, batch, device, normalizer = pre
        tokenizer = tokenizer_step(self.config)
        relative = {"registry_name": "relative_actions_processor", "config": relative_config(self.config)}
        absolute = {"registry_name": "absolute_actions_processor", "config": {"enabled": False}}
        newline = {"registry_name": "pi0_new_line_processor", "config": {}}
        unnormalizer, device_post = post
        return (
            [rename, batch, newline, tokenizer, device, relative, normalizer],
            [unnormalizer, absolute, device_post],
        )


def tokenizer_step(config: PiConfig) -> dict:
    return {
        "registry_name": "tokenizer_processor",
        "config": {
            "max_length": config.tokenizer_max_length,
            "task_key": "task",
            "padding_side": "right",
            "padding": "max_length",
            "truncation": True,
            "tokenizer_name": "google/paligemma-3b-pt-224",
        },
    }


def relative_config(config: PiConfig) -> dict:
    return {
        "enabled": config.use_relative_actions,
        "exclude_joints": list(config.relative_exclude_joints),
        "action_names": config.action_feature_names,
    }
