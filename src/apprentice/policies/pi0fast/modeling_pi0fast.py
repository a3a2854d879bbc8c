"""π0-FAST (Pertsch et al. 2025) as a Policy: lerobot 0.6.1's `pi0_fast` on stock transformers.

Training batch -> normalise state/action -> prompt `<bos>Task: …, State: …;\\n` (the batch's `task`
strings) and FAST action tokens -> PI0FastModel's cross-entropy. Acting: the same prompt, greedy (or
temperature) decoding of up to `max_decoding_steps` tokens with a KV cache, FAST decode, unnormalise.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.base import Policy, adamw_from_config, cosine_decay_with_warmup
from apprentice.policies.config import ACTION, OBS_STATE, PolicyError
from apprentice.policies.normalize import Stats
from apprentice.policies.pi0fast.configuration_pi0fast import PI0FastConfig
from apprentice.policies.pi0fast.fast_tokenizer import FastTokenizer
from apprentice.policies.pi0fast.model import PI0FastModel
from apprentice.policies.pi0fast.prompt import Pi0FastTokens, load_text_tokenizer

log = logging.getLogger(__name__)

PREFIX = "model.paligemma_with_expert.paligemma."
LM_HEAD = PREFIX + "lm_head.weight"
EMBED = PREFIX + "model.language_model.embed_tokens.weight"


def resize_with_pad(images: Tensor, height: int, width: int) -> Tensor:
    """(B, C, h, w) -> (B, C, height, width): keep the aspect ratio, pad bottom/right with 0 (openpi's choice
    for images in [0, 1], i.e. black)."""
    h, w = images.shape[-2:]
    if (h, w) == (height, width):
        return images
    ratio = max(w / width, h / height)
    nh, nw = int(h / ratio), int(w / ratio)
    resized = F.interpolate(images, size=(nh, nw), mode="bilinear", align_corners=False).clamp(0, 1)
    return F.pad(resized, (0, width - nw, 0, height - nh), value=0.0)


class PI0FastPolicy(Policy):
    config_class = PI0FastConfig

    def __init__(self, config: PI0FastConfig, stats: Stats) -> None:
        super().__init__(config, stats)
        self.config: PI0FastConfig = config
        self.model = PI0FastModel(config)
        if config.freeze_vision_encoder:
            for p in self.model.paligemma_with_expert.paligemma.model.vision_tower.parameters():
                p.requires_grad_(False)
        if config.gradient_checkpointing:
            self.set_grad_checkpointing(True)
        self._tokens: Pi0FastTokens | None = None
        self.reset()

    # ------------------------------------------------------------------------------- tokenizers
    @property
    def tokens(self) -> Pi0FastTokens:
        """The text + FAST tokenizers, loaded on first use (by name: a local dir or the Hub)."""
        if self._tokens is None:
            c = self.config
            fast = FastTokenizer.load(c.action_tokenizer_name)
            self._tokens = Pi0FastTokens(
                load_text_tokenizer(c.text_tokenizer_name), fast, c.tokenizer_max_length, c.max_action_tokens,
                c.fast_skip_tokens,
            )
        return self._tokens

    @property
    def action_dim(self) -> int:
        return int(self.config.action_feature.shape[0])

    # ------------------------------------------------------------------------------- state dict
    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """lm_head and embed_tokens are one tied tensor: a checkpoint holding either one loads (lerobot's
        safetensors keep lm_head.weight only)."""
        state = dict(state_dict)
        if LM_HEAD in state and EMBED not in state:
            state[EMBED] = state[LM_HEAD]
        elif EMBED in state and LM_HEAD not in state:
            state[LM_HEAD] = state[EMBED]
        return super().load_state_dict(state, strict=strict, assign=assign)

    def fsdp_units(self) -> list[nn.Module]:
        """The modules FSDP shards one by one: each Gemma and SigLIP layer."""
        pg = self.model.paligemma_with_expert.paligemma.model
        return [*pg.vision_tower.vision_model.encoder.layers, *pg.language_model.layers]

    def processor_steps(self, pre: list[dict], post: list[dict]) -> tuple[list[dict], list[dict]]:
        """lerobot 0.6.1's pi0_fast pipeline around the generic steps (rename, to_batch, device, normalizer /
        unnormalizer, device), so lerobot rebuilds its processors from our files. The normalizer stays step 3
        and the unnormalizer step 0, the indices in their state file names. ("trust_remote_code" is lerobot's
        setting for its own FAST loader; this package never runs remote code.)"""
        c = self.config
        rename, to_batch, device, normalizer = pre
        tokenizer = {"max_length": c.tokenizer_max_length, "task_key": "task", "padding_side": "right",
                     "padding": "max_length", "truncation": True, "tokenizer_name": c.text_tokenizer_name}
        action_tokenizer = {"trust_remote_code": True, "max_action_tokens": c.max_action_tokens,
                            "action_tokenizer_name": c.action_tokenizer_name}
        relative = {"enabled": c.use_relative_actions, "exclude_joints": list(c.relative_exclude_joints),
                    "action_names": c.action_feature_names}
        pre = [
            rename, to_batch, {"registry_name": "relative_actions_processor", "config": relative}, normalizer,
            {"registry_name": "pi0_fast_prepare_state_tokenizer_processor_step",
             "config": {"max_state_dim": c.max_state_dim, "task_key": "task"}},
            {"registry_name": "tokenizer_processor", "config": tokenizer},
            {"registry_name": "action_tokenizer_processor", "config": action_tokenizer},
            device,
        ]
        unnormalizer, device_out = post
        absolute = {"registry_name": "absolute_actions_processor", "config": {"enabled": c.use_relative_actions}}
        return pre, [unnormalizer, absolute, {**device_out, "config": {"device": "cpu", "float_dtype": None}}]

    def backbone_parameters(self) -> list[nn.Parameter]:
        vision = self.model.paligemma_with_expert.paligemma.model.vision_tower
        return [p for p in vision.parameters() if p.requires_grad]

    # ------------------------------------------------------------------------------- optimisation
    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        return adamw_from_config([p for p in self.parameters() if p.requires_grad], self.config, lr, fused)

    def make_scheduler(self, optimizer: torch.optim.Optimizer, num_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        c = self.config
        return cosine_decay_with_warmup(
            optimizer, c.scheduler_warmup_steps, c.scheduler_decay_steps, c.optimizer_lr, c.scheduler_decay_lr,
            num_steps,
        )

    # ------------------------------------------------------------------------------- inputs
    def _images(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        keys = list(self.config.image_features)
        present = [k for k in keys if k in batch]
        if not present:
            raise PolicyError(f"pi0fast: the batch has none of the cameras {keys}; it has {sorted(batch)}")
        h, w = self.config.image_resolution
        images, masks = [], []
        for key in present:
            img = resize_with_pad(batch[key].float(), h, w) * 2.0 - 1.0  # SigLIP takes [-1, 1]
            images.append(img)
            masks.append(torch.ones(img.shape[0], dtype=torch.bool, device=img.device))
        # Absent cameras (lerobot's empty_camera_<i> features among them) enter as -1 images, masked out.
        extra = max(0, self.config.empty_cameras - sum("empty_camera" in k for k in keys))
        for _ in range(len(keys) - len(present) + extra):
            images.append(torch.full_like(images[0], -1.0))
            masks.append(torch.zeros_like(masks[0]))
        return images, masks

    def _tasks(self, batch: dict[str, Any], size: int, training: bool) -> list[str]:
        task = batch.get("task")
        if task is None:
            if training:
                raise PolicyError("pi0fast: the batch has no 'task' strings; the prompt needs them")
            return [""] * size
        tasks = [task] if isinstance(task, str) else list(task)
        return tasks * size if len(tasks) == 1 and size > 1 else tasks

    def _prompt(self, batch: dict[str, Any], training: bool) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
        images, img_masks = self._images(batch)
        state = batch.get(OBS_STATE)
        tasks = self._tasks(batch, images[0].shape[0], training)
        tokens, masks = self.tokens.prompts(tasks, state, images[0].device)
        return images, img_masks, tokens, masks

    def _check_obs(self, obs: dict[str, Any]) -> None:
        """The state is required (it is in the prompt); cameras may be missing (masked), not all of them."""
        if self.config.robot_state_feature is not None and OBS_STATE not in obs:
            raise PolicyError(f"pi0fast: the observation lacks {OBS_STATE!r}; it has {sorted(obs)}")

    # ------------------------------------------------------------------------------- training
    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        batch = self.normalizer.normalize_batch(batch)
        images, img_masks, tokens, masks = self._prompt(batch, training=True)
        act_ids, act_mask = self.tokens.actions(batch[ACTION])
        loss = self.model(images, img_masks, tokens, masks, act_ids, act_mask)
        return loss, {"ce_loss": loss.detach()}

    @torch.no_grad()
    def token_stats(self, batch: dict[str, Any], positions: int = 12) -> dict[str, Any]:
        """Teacher-forced diagnostics of a batch with actions: mean cross-entropy (the training loss), per target
        position (0 = the first token after <bos>, i.e. "Action: " first) accuracy of the argmax and mean
        cross-entropy for the first `positions`, and the fraction of rows whose every token is the argmax (what
        greedy decoding then reproduces exactly). The loss averages over many easy tokens; these show whether
        the few first FAST tokens (the chunk's low frequencies: where it goes) are the ones that are wrong."""
        was_training = self.training
        self.eval()
        batch = self.normalizer.normalize_batch(batch)
        images, img_masks, tokens, masks = self._prompt(batch, training=True)
        act_ids, act_mask = self.tokens.actions(batch[ACTION])
        loss, valid, right = self.model.token_losses(images, img_masks, tokens, masks, act_ids, act_mask, True)
        assert right is not None
        self.train(was_training)
        n = min(positions, loss.shape[1])
        counts = valid[:, :n].sum(0).clamp(min=1)
        return {
            "ce": float((loss * valid).sum() / valid.sum().clamp(min=1)),
            "acc_per_position": [round(float(v), 4) for v in ((right & valid)[:, :n].sum(0) / counts)],
            "ce_per_position": [round(float(v), 4) for v in ((loss * valid)[:, :n].sum(0) / counts)],
            "rows_all_argmax": float((right | ~valid).all(1).float().mean()),
            "prefix_tokens": len(self.tokens.prefix_ids),
            "rows": int(loss.shape[0]),
        }

    # ------------------------------------------------------------------------------- acting
    def reset(self) -> None:
        self._action_queue: deque[Tensor] = deque(maxlen=self.config.n_action_steps)

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        """(B, chunk_size, action_dim) actions in dataset units."""
        self._check_obs(obs)
        was_training = self.training
        self.eval()
        batch = self.normalizer.normalize_batch(obs)
        images, img_masks, tokens, masks = self._prompt(batch, training=False)
        c, tk = self.config, self.tokens
        generated = self.model.generate(
            images, img_masks, tokens, masks, bos_id=tk.bos, end_id=tk.end_id,
            max_decoding_steps=c.max_decoding_steps, temperature=c.temperature, use_kv_cache=c.use_kv_cache,
            generator=generator, bos_in_prefix=c.decode_bos_in_prefix,
        )
        # Decoded over the whole chunk the tokens encode (lerobot decodes over n_action_steps, which only
        # differs when n_action_steps < chunk_size and then misplaces every coefficient).
        actions = tk.decode(generated.cpu(), c.chunk_size, self.action_dim).to(images[0].device)
        self.train(was_training)
        return self._unnormalize_action(actions)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> Tensor:
        if not self._action_queue:
            chunk = self.predict_action_chunk(obs)[:, : self.config.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    @torch.no_grad()
    def fast_round_trip(self, actions: Tensor) -> Tensor:
        """Actions (B, T, D, dataset units) through FAST and back: the chunk a perfect model decodes for them
        (FAST's rounding is all that separates it from `actions`)."""
        fast = self.tokens.fast
        normalized = self.normalizer.normalize_batch({ACTION: actions})[ACTION].float().cpu().numpy()
        trip = torch.from_numpy(fast.decode(fast.encode(normalized), actions.shape[1], self.action_dim))
        return self._unnormalize_action(trip.float().to(actions.device))

    def decode_stats(self) -> dict[str, int]:
        """FAST decoding fallbacks so far (malformed generated sequences), and missing "Action: " prefixes."""
        tk = self.tokens
        return {**tk.fast.stats.as_dict(), "prefix_missing": tk.prefix_missing}
