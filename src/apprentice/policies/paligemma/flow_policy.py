"""What π0 and π0.5 share: the flow-matching core over PaliGemma + expert, and the policy around it.

`FlowCore` (the policy's `model`, so state-dict keys are lerobot's `model.paligemma_with_expert.…`,
`model.action_in_proj.…`) embeds the prefix, trains on the flow-matching loss and builds the velocity
function that sampling (plain Euler or RTC's guided denoising) integrates. A subclass adds its suffix:
π0 a state token plus action-time MLP tokens, π0.5 action tokens and an adaRMSNorm time condition.

`PiPolicy` does lerobot's processor steps in the policy: normalization, the prompt and its tokenization,
image resize-with-pad to [-1, 1], zero-padding state/action to max_state_dim/max_action_dim.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.base import Policy, adamw_from_config, cosine_decay_with_warmup
from apprentice.policies.config import ACTION, OBS_STATE, PolicyError
from apprentice.policies.normalize import Stats
from apprentice.policies.paligemma.config import PiConfig
from apprentice.policies.paligemma.flow import VelocityFn, sample_time
from apprentice.policies.paligemma.images import siglip_pixels
from apprentice.policies.paligemma.masks import make_att_2d_masks, position_ids, suffix_mask_with_prefix
from apprentice.policies.paligemma.model import PaliGemmaWithExpert
from apprentice.policies.paligemma.prompt import PALIGEMMA_TOKENIZER, PromptTokenizer
from apprentice.policies.paligemma.variants import get_variant
from apprentice.policies.rtc import guided_denoise

OBS_LANGUAGE_TOKENS = "observation.language.tokens"
OBS_LANGUAGE_ATTENTION_MASK = "observation.language.attention_mask"


class FlowCore(nn.Module):
    """PaliGemma + expert with the action projections; subclasses define `embed_suffix`."""

    expert_adarms: ClassVar[bool] = False

    def __init__(self, config: PiConfig) -> None:
        super().__init__()
        self.config = config
        vlm = get_variant(config.paligemma_variant, "paligemma_variant")
        expert = get_variant(config.action_expert_variant, "action_expert_variant")
        self.paligemma_with_expert = PaliGemmaWithExpert(
            vlm,
            expert,
            image_size=config.image_resolution[0],
            expert_adarms=self.expert_adarms,
            precision=config.dtype,
            freeze_vision_encoder=config.freeze_vision_encoder,
            train_expert_only=config.train_expert_only,
        )
        self.width = expert.width
        self.action_in_proj = nn.Linear(config.max_action_dim, expert.width)
        self.action_out_proj = nn.Linear(expert.width, config.max_action_dim)

    def embed_suffix(self, state: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """-> (B, S, W) embeddings, (B, S) pad mask, (B, S) block starts, adaRMS condition or None."""
        raise NotImplementedError

    def embed_prefix(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Images then language: (B, P, W) embeddings, (B, P) pad mask, (B, P) zeros (one bidirectional block)."""
        pwe = self.paligemma_with_expert
        embs, pads = [], []
        for img, img_mask in zip(images, img_masks, strict=True):
            emb = pwe.run(pwe.embed_image, img)
            embs.append(emb)
            pads.append(img_mask[:, None].expand(emb.shape[0], emb.shape[1]))
        lang = pwe.embed_language_tokens(tokens)
        embs.append(lang.to(embs[0].dtype) if embs else lang)
        pads.append(masks)
        pad = torch.cat(pads, dim=1)
        return torch.cat(embs, dim=1), pad, torch.zeros_like(pad, dtype=torch.long)

    def loss(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor, state: Tensor,
        actions: Tensor, noise: Tensor, t: Tensor,
    ) -> Tensor:
        """Per-element squared error (B, chunk, max_action_dim) of the predicted velocity."""
        tt = t[:, None, None]
        x_t = tt * noise + (1 - tt) * actions
        target = noise - actions
        prefix, pre_pad, pre_att = self.embed_prefix(images, img_masks, tokens, masks)
        suffix, suf_pad, suf_att, cond = self.embed_suffix(state, x_t, t)
        pad = torch.cat([pre_pad, suf_pad], dim=1)
        mask = make_att_2d_masks(pad, torch.cat([pre_att, suf_att.long()], dim=1))
        _, out, _ = self.paligemma_with_expert(prefix, suffix, mask, position_ids(pad), adarms_cond=cond)
        assert out is not None
        v = self.action_out_proj(out[:, -self.config.chunk_size :].to(self.action_out_proj.weight.dtype))
        return F.mse_loss(target, v.float(), reduction="none")

    def make_velocity_fn(
        self, images: list[Tensor], img_masks: list[Tensor], tokens: Tensor, masks: Tensor, state: Tensor
    ) -> VelocityFn:
        """Run the prefix once (its keys/values cached); the returned fn gives v(x_t, t) from the expert alone."""
        pwe = self.paligemma_with_expert
        prefix, pre_pad, pre_att = self.embed_prefix(images, img_masks, tokens, masks)
        _, _, cache = pwe(prefix, None, make_att_2d_masks(pre_pad, pre_att), position_ids(pre_pad), keep_cache=True)
        assert cache is not None
        cache.pad_masks = pre_pad
        offset = pre_pad.long().sum(dim=-1)

        def velocity(x_t: Tensor, t: Tensor) -> Tensor:
            suffix, suf_pad, suf_att, cond = self.embed_suffix(state, x_t, t)
            mask = suffix_mask_with_prefix(pre_pad, suf_pad, suf_att.long())
            _, out, _ = pwe(None, suffix, mask, position_ids(suf_pad, offset), adarms_cond=cond, cache=cache)
            assert out is not None
            out = out[:, -self.config.chunk_size :].to(self.action_out_proj.weight.dtype)
            return self.action_out_proj(out).float()

        return velocity


def pad_last(x: Tensor, dim: int) -> Tensor:
    return x if x.shape[-1] >= dim else F.pad(x, (0, dim - x.shape[-1]))


class PiPolicy(Policy):
    """Base of the π0 and π0.5 policies (lerobot's PI0Policy/PI05Policy behaviour)."""

    config_class: ClassVar[type[PiConfig]]
    core_class: ClassVar[type[FlowCore]]
    config: PiConfig

    def __init__(self, config: PiConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        if not config.image_features:
            raise PolicyError(f"{config.type}: needs at least one camera (VISUAL input feature) or empty_cameras")
        self.model = self.core_class(config)
        self.prompt = PromptTokenizer(config.tokenizer_max_length, PALIGEMMA_TOKENIZER)
        if config.gradient_checkpointing:
            self.set_grad_checkpointing(True)
        self.reset()

    # ------------------------------------------------------------------------------ inputs
    def reset(self) -> None:
        self._action_queue: deque[Tensor] = deque(maxlen=self.config.n_action_steps)

    def prompts(self, batch: dict[str, Any], state: Tensor) -> list[str]:
        """The language prompts of a normalized batch (state: (B, state_dim) normalized, unpadded)."""
        raise NotImplementedError

    def _images(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        present = [k for k in self.config.image_features if k in batch]
        if not present:
            raise PolicyError(
                f"{self.config.type}: the batch has none of the cameras {list(self.config.image_features)}"
            )
        images, masks = [], []
        for key in present:
            img = siglip_pixels(batch[key].to(self.device), self.config.image_resolution)
            images.append(img)
            masks.append(torch.ones(img.shape[0], dtype=torch.bool, device=img.device))
        for _ in range(len(self.config.image_features) - len(present)):  # missing cameras: -1 images, masked
            images.append(torch.full_like(images[0], -1.0))
            masks.append(torch.zeros_like(masks[0]))
        return images, masks

    def _language(self, batch: dict[str, Any], state: Tensor) -> tuple[Tensor, Tensor]:
        if OBS_LANGUAGE_TOKENS in batch:  # already tokenized (lerobot's preprocessor output)
            return batch[OBS_LANGUAGE_TOKENS].to(self.device), batch[OBS_LANGUAGE_ATTENTION_MASK].to(self.device).bool()
        return self.prompt(self.prompts(batch, state), self.device)

    def _inputs(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor, Tensor, dict]:
        norm = self.normalizer.normalize_batch(batch)
        state = norm[OBS_STATE].to(self.device).float()
        if state.dim() == 3:  # (B, n_obs_steps=1, D)
            state = state[:, -1]
        images, img_masks = self._images(norm)
        tokens, masks = self._language(norm, state)
        return images, img_masks, tokens, masks, pad_last(state, self.config.max_state_dim), norm

    # ---------------------------------------------------------------------------- training
    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        images, img_masks, tokens, masks, state, norm = self._inputs(batch)
        actions = pad_last(norm[ACTION].to(self.device).float(), self.config.max_action_dim)
        noise = torch.randn_like(actions)
        cfg = self.config
        t = sample_time(
            actions.shape[0], actions.device, cfg.time_sampling_beta_alpha, cfg.time_sampling_beta_beta,
            cfg.time_sampling_scale, cfg.time_sampling_offset,
        )
        losses = self.model.loss(images, img_masks, tokens, masks, state, actions, noise, t)
        losses = losses[:, :, : cfg.action_feature.shape[0]]  # padded action dims do not count (lerobot)
        loss = losses.mean()
        return loss, {"loss": loss.detach()}

    # --------------------------------------------------------------------------- inference
    def make_velocity_fn(self, batch: dict[str, Any]) -> VelocityFn:
        """v(x_t (B, chunk_size, max_action_dim), t (B,)) for this observation batch; the prefix runs once here."""
        images, img_masks, tokens, masks, state, _ = self._inputs(batch)
        return self.model.make_velocity_fn(images, img_masks, tokens, masks, state)

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any], noise: Tensor | None = None, rtc: Any = None) -> Tensor:
        """(B, chunk_size, action_dim) actions in dataset units. `noise`: (B, chunk_size, max_action_dim)
        starting sample (drawn when None); `rtc`: settings for `apprentice.policies.rtc.guided_denoise`."""
        missing = [k for k in self.config.input_features if k not in obs and k not in self.config.image_features]
        if missing:  # cameras may be missing (padded as lerobot does); the state may not
            raise PolicyError(f"{self.config.type} policy: observation lacks {missing}; it has {sorted(obs)}")
        was_training = self.training
        self.eval()
        velocity = self.make_velocity_fn(obs)
        bsize = next(v for v in obs.values() if isinstance(v, Tensor)).shape[0]
        shape = (bsize, self.config.chunk_size, self.config.max_action_dim)
        if noise is None:
            noise = torch.randn(shape, device=self.device)
        elif tuple(noise.shape) != shape:
            raise PolicyError(f"{self.config.type}: noise must be {shape}, got {tuple(noise.shape)}")
        noise = noise.to(self.device, torch.float32)
        # rtc=None: plain Euler; with RTC each step is guided toward the committed prefix
        x = guided_denoise(velocity, noise, self.config.num_inference_steps, rtc)
        self.train(was_training)
        return self._unnormalize_action(x[:, :, : self.config.action_feature.shape[0]])

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> Tensor:
        if not self._action_queue:
            chunk = self.predict_action_chunk(obs)[:, : self.config.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    # ------------------------------------------------------------------------ optimization
    def default_peft_targets(self) -> str:
        """lerobot's π0/π0.5 default: LoRA on the Gemma expert's q/v projections and on the state/action/time
        projections (names π0.5 lacks simply match nothing)."""
        projections = "state_proj|action_in_proj|action_out_proj|action_time_mlp_in|action_time_mlp_out"
        return rf"(.*\.gemma_expert\..*\.self_attn\.(q|v)_proj|model\.({projections}))"

    def fsdp_units(self) -> list[nn.Module]:
        """The modules `--fsdp=true` shards one by one: each SigLIP layer. The Gemma and expert layers run
        pairwise inside PaliGemmaWithExpert._layer (their submodules are called, never their forward), and the
        image and token embeddings are used outside PaliGemmaWithExpert.forward, so those stay in the root unit
        (FSDP2 gathers a unit's weights only around its forward)."""
        return list(self.model.paligemma_with_expert.vision_tower.vision_model.encoder.layers)

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.model.paligemma_with_expert.grad_checkpointing = enabled

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        return adamw_from_config(self.optim_groups(), self.config, lr, fused)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, num_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        c = self.config
        return cosine_decay_with_warmup(
            optimizer, c.scheduler_warmup_steps, c.scheduler_decay_steps, c.optimizer_lr, c.scheduler_decay_lr,
            num_steps,
        )

    # ------------------------------------------------------------------------- checkpoints
    def adapt_state_dict(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        """PaliGemma's token embedding and lm_head are one tensor here (tied, as in PaliGemma). lerobot keeps
        them apart in memory (its PaliGemma rebuilds the language model after tying), computes with the
        embedding and never with lm_head, and openpi-converted files hold lm_head only. So: the embedding
        when the file has it, else lm_head — the tensor lerobot itself ends up computing with."""
        embed = "model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
        head = "model.paligemma_with_expert.paligemma.lm_head.weight"
        weights = dict(weights)
        source = weights.get(embed, weights.get(head))
        if source is not None:
            weights[embed] = weights[head] = source
        return weights

    def processor_steps(self, pre: list[dict], post: list[dict]) -> tuple[list[dict], list[dict]]:
        """Processor pipelines as lerobot 0.6.1 writes them for this policy (see save_policy)."""
        return pre, post

    def save_extra(self, directory: Path) -> None:
        self.prompt.save(directory)

    def inherit(self, base: Policy) -> None:
        if isinstance(base, PiPolicy):
            self.prompt.name, self.prompt.search_dirs = base.prompt.name, base.prompt.search_dirs
            self.prompt.tokenizer = base.prompt.tokenizer

    def configure_from_processor(self, directory: Path, steps: list[dict]) -> None:
        self.prompt.search_dirs = [directory]
        for step in steps:
            if step.get("registry_name") == "tokenizer_processor":
                self.prompt.name = step.get("config", {}).get("tokenizer_name", self.prompt.name)

