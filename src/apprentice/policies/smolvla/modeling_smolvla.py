"""SmolVLA policy (LeRobot 0.6.1's SmolVLAPolicy): normalisation, image resize-with-padding, language
tokens, flow-matching loss, and chunked sampling with an optional real-time-chunking (RTC) hook.

Parameter names are LeRobot's (`model.vlm_with_expert.vlm...`, `model.vlm_with_expert.lm_expert...`,
`model.state_proj`, `model.action_in_proj`, `model.action_out_proj`, `model.action_time_mlp_in/out`), so a
lerobot checkpoint's model.safetensors loads key for key.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from apprentice.policies.base import Policy, adamw_from_config, cosine_decay_with_warmup
from apprentice.policies.config import ACTION, OBS_STATE, PolicyError
from apprentice.policies.normalize import Stats
from apprentice.policies.smolvla import processor_smolvla as proc
from apprentice.policies.smolvla.chunk_graph import ChunkGraph
from apprentice.policies.smolvla.configuration_smolvla import SmolVLAConfig
from apprentice.policies.smolvla.flow_matching import SmolVLAFlowMatching, VelocityFn
from apprentice.policies.smolvla.vlm_with_expert import SmolVLMWithExpert

log = logging.getLogger(__name__)
TASK_INDEX = "task_index"
PROJECTIONS = "state_proj|action_in_proj|action_out_proj|action_time_mlp_in|action_time_mlp_out"


def resize_with_pad(img: Tensor, height: int, width: int) -> Tensor:
    """(B, C, h, w) -> (B, C, height, width) keeping the aspect ratio; zeros padded on the left and top."""
    h, w = img.shape[-2:]
    if (h, w) == (height, width):
        return img
    ratio = max(w / width, h / height)
    rh, rw = int(h / ratio), int(w / ratio)
    img = F.interpolate(img, size=(rh, rw), mode="bilinear", align_corners=False)
    return F.pad(img, (max(0, width - rw), 0, max(0, height - rh), 0), value=0.0)


def pad_last(x: Tensor, dim: int) -> Tensor:
    return x if x.shape[-1] >= dim else F.pad(x, (0, dim - x.shape[-1]))


@contextlib.contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    """TF32 for float32 matmuls inside the block (CUDA inference: ~8x the GEMM rate of full fp32 on an H200,
    with a 10-bit mantissa as lerobot-train runs); the caller's setting comes back afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = before or enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


class SmolVLAPolicy(Policy):
    """SmolVLA. Speed, all of it off the weights and config.json (so checkpoints stay LeRobot's):

    - `cuda_graphs` (default True): on CUDA, predict_action_chunk replays the whole sample (prefix + num_steps
      expert steps, RTC-guided or not) from a CUDA graph (chunk_graph.py), with TF32 float32 matmuls;
    - `store_frozen_in(torch.bfloat16)`: the trainer's hook under bf16 autocast — the frozen VLM kept in bf16;
    - the training step has no host syncs and draws its noise and times on the device, so the trainer's
      `--cuda_graphs=true` records it whole.
    """

    config_class = SmolVLAConfig
    cuda_graphs: bool = True

    def __init__(self, config: SmolVLAConfig, stats: Stats, checkpoint_dir: Path | None = None) -> None:
        super().__init__(config, stats)
        from transformers import SmolVLMForConditionalGeneration

        config.validate_features()
        if config.adapt_to_pi_aloha:
            raise PolicyError("smolvla: adapt_to_pi_aloha is not supported here; set it to false")
        self.config: SmolVLAConfig = config
        self.vlm_dir = proc.resolve_vlm_dir(config, checkpoint_dir)
        self.vlm_config = proc.load_vlm_config(self.vlm_dir)
        self.tokenize = proc.TaskTokenizer(proc.load_tokenizer(self.vlm_dir), config)
        self._check_image_size()
        vlm = None
        if config.load_vlm_weights and checkpoint_dir is None:  # a checkpoint's weights replace them anyway
            vlm = SmolVLMForConditionalGeneration.from_pretrained(str(self.vlm_dir), dtype=torch.float32)
        vlm_with_expert = SmolVLMWithExpert(
            self.vlm_config, num_vlm_layers=config.num_vlm_layers, num_expert_layers=config.num_expert_layers,
            expert_width_multiplier=config.expert_width_multiplier, attention_mode=config.attention_mode,
            self_attn_every_n_layers=config.self_attn_every_n_layers,
            freeze_vision_encoder=config.freeze_vision_encoder, train_expert_only=config.train_expert_only, vlm=vlm,
        )
        image_tokens = None
        if config.add_image_special_tokens:
            image_tokens = torch.tensor([self.tokenize.token_id("<fake_token_around_image>"),
                                         self.tokenize.token_id("<global-img>")])
        self.model = SmolVLAFlowMatching(config, vlm_with_expert, image_tokens)
        self.register_buffer("task_tokens", None, persistent=False)
        self.register_buffer("task_mask", None, persistent=False)
        self.chunk_graph = ChunkGraph()
        # Parameters store_frozen_in cast, with the dtype they had: state_dict() gives them back in it, so a
        # checkpoint has the keys and dtypes it would have without the cast (LeRobot's).
        self._stored_dtypes: dict[str, torch.dtype] = {}
        self.register_state_dict_post_hook(_restore_stored_dtypes)
        self.reset()

    @classmethod
    def from_checkpoint(cls, config: SmolVLAConfig, stats: Stats, directory: Path) -> SmolVLAPolicy:
        return cls(config, stats, checkpoint_dir=directory)

    def _check_image_size(self) -> None:
        """The connector's pixel shuffle needs a square grid of patches divisible by its scale factor."""
        vision = self.vlm_config.vision_config
        step = vision.patch_size * self.vlm_config.scale_factor
        w, h = self.config.resize_imgs_with_padding
        if w != h or w % step:
            raise PolicyError(
                f"--policy.resize_imgs_with_padding=[{w},{h}] does not fit the VLM in {self.vlm_dir}: it needs a "
                f"square size divisible by patch_size*scale_factor = {step} (the checkpoint uses "
                f"{vision.image_size}); set --policy.resize_imgs_with_padding=[{vision.image_size},{vision.image_size}]"
            )

    def reset(self) -> None:
        self._action_queue: deque[Tensor] = deque(maxlen=self.config.n_action_steps)

    # ------------------------------------------------------------------ checkpoint hooks
    def save_extra(self, directory: Path) -> None:
        proc.save_vlm_assets(directory, self.vlm_config, self.tokenize.tokenizer)

    def processor_steps(self, pre: list[dict], post: list[dict]) -> tuple[list[dict], list[dict]]:
        _rename, _batch, device, normalizer = pre
        return proc.preprocessor_steps(self.config, device, normalizer), post

    def store_frozen_in(self, dtype: torch.dtype) -> None:
        """Keep the frozen VLM parts (the vision encoder with freeze_vision_encoder; the whole VLM with
        train_expert_only) in `dtype`. The trainer calls it when it trains under bf16 autocast: those weights
        were cast to bf16 anyway, once per use per step (~1 440 casts a step at batch 4 on the H200), and now
        take half the memory. The prefix's residual stream stays float32. Saved weights keep their old dtype."""
        vlm = self.model.vlm_with_expert.vlm
        frozen = [vlm] if self.config.train_expert_only else []
        if self.config.freeze_vision_encoder and not frozen:
            frozen = [vlm.model.vision_model]
        names = {id(p): name for name, p in self.named_parameters()}
        for module in frozen:
            for p in module.parameters():
                if p.requires_grad or not p.is_floating_point() or p.dtype == dtype:
                    continue
                self._stored_dtypes.setdefault(names[id(p)], p.dtype)
                p.data = p.data.to(dtype)

    # ------------------------------------------------------------------ language
    def set_tasks(self, tasks: list[str]) -> None:
        """Tokenise the dataset's tasks (by task_index) once; batches then carry only `task_index`.
        Padding them all to the longest task gives the same outputs as per-batch padding (padding is masked
        and does not shift positions)."""
        tasks = proc.check_tasks(list(tasks), len(tasks), "the dataset's tasks.parquet")
        tokens, mask = self.tokenize(tasks)
        self.task_tokens, self.task_mask = tokens.to(self.device), mask.to(self.device)

    def language(self, batch: dict[str, Any], size: int) -> tuple[Tensor, Tensor]:
        if proc.LANGUAGE_TOKENS in batch:  # already tokenised (LeRobot's preprocessor output)
            return batch[proc.LANGUAGE_TOKENS], batch[proc.LANGUAGE_MASK].bool()
        if TASK_INDEX in batch and self.task_tokens is not None:
            idx = batch[TASK_INDEX].reshape(size).long().to(self.task_tokens.device)
            return self.task_tokens[idx], self.task_mask[idx]
        tokens, mask = self.tokenize(proc.check_tasks(batch.get("task"), size, "the observation"))
        return tokens.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------ inputs
    def _images(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        keys = list(self.config.image_features)
        present = [k for k in keys if k in batch]
        if not present:
            raise PolicyError(f"smolvla: the batch has none of the cameras {keys}; it has {sorted(batch)}")
        w, h = self.config.resize_imgs_with_padding
        images, masks = [], []
        for key in present:
            img = batch[key]
            img = img[:, -1] if img.ndim == 5 else img
            if img.ndim != 4 or img.shape[1] != 3:
                raise PolicyError(
                    f"smolvla: {key} has shape {tuple(img.shape)}; expected (B, 3, H, W) RGB in [0, 1]"
                )
            images.append(resize_with_pad(img.float(), h, w) * 2.0 - 1.0)  # SigLIP takes [-1, 1]
            pad = batch.get(f"{key}_padding_mask")
            valid = torch.ones(img.shape[0], dtype=torch.bool, device=img.device)
            masks.append(pad.bool() if pad is not None else valid)
        for _ in range(min(len(keys) - len(present), self.config.empty_cameras)):
            images.append(torch.full_like(images[-1], -1.0))
            masks.append(torch.zeros_like(masks[-1]))
        return images, masks

    def _state(self, batch: dict[str, Any]) -> Tensor:
        if OBS_STATE not in batch:
            raise PolicyError(
                f"smolvla: the batch has no {OBS_STATE!r} (it has {sorted(batch)}); map it in the contract"
            )
        state = batch[OBS_STATE]
        state = state[:, -1] if state.ndim > 2 else state
        return pad_last(state.float(), self.config.max_state_dim)

    def _inputs(self, batch: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor, Tensor]:
        images, masks = self._images(batch)
        state = self._state(batch)
        tokens, token_mask = self.language(batch, state.shape[0])
        return images, masks, tokens, token_mask, state

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        batch = self.normalizer.normalize_batch(batch)
        actions = pad_last(batch[ACTION].float(), self.config.max_action_dim)
        losses = self.model(*self._inputs(batch), actions)
        losses = losses[:, :, : self.config.action_feature.shape[0]]
        pad = batch.get("action_is_pad")
        if pad is None:
            loss = losses.mean()
        else:
            valid = (~pad.bool()).unsqueeze(-1)
            loss = (losses * valid).sum() / (valid.sum() * losses.shape[-1]).clamp_min(1)
        return loss, {"loss": loss.detach()}

    # ------------------------------------------------------------------ inference
    def make_velocity_fn(self, obs: dict[str, Any]) -> VelocityFn:
        """Prefix K/V computed once; the returned v(x_t, t) runs the expert only (normalised units)."""
        return self.model.make_velocity_fn(*self._inputs(self.normalizer.normalize_batch(obs)))

    @torch.no_grad()
    def predict_action_chunk(self, obs: dict[str, Any], noise: Tensor | None = None, rtc: Any = None) -> Tensor:
        """(B, chunk_size, action_dim) actions in dataset units for the batched observation `obs` (which
        carries `task`: a string or one per sample).

        `noise` (B, chunk_size, max_action_dim): the flow's starting sample (standard normal if None).
        `rtc`: real-time-chunking settings; when given, sampling is `apprentice.policies.rtc.guided_denoise(
        velocity_fn, noise, num_steps, rtc)`, where velocity_fn(x_t, t) -> v works in normalised,
        max_action_dim-padded units, t runs from 1 (noise) to 0 (data), x_t = t*noise + (1-t)*actions,
        v ≈ noise - actions, and plain Euler would step x += v * (-1/num_steps). Without `rtc`: that Euler loop.
        """
        was_training = self.training
        self.eval()
        images, masks, tokens, token_mask, state = self._inputs(self.normalizer.normalize_batch(obs))
        b = state.shape[0]
        if noise is None:
            noise = torch.randn(b, self.config.chunk_size, self.config.max_action_dim, device=self.device)
        noise = noise.to(self.device, torch.float32)
        cuda = noise.device.type == "cuda"
        with tf32_matmuls(cuda):
            guided = rtc is not None and rtc.active
            if cuda and self.cuda_graphs and (not guided or rtc.graphable):
                # One graph for every task: tokens padded to tokenizer_max_length (padding is masked out and
                # does not move positions, so the chunk is the one the eager path samples).
                tokens, token_mask = self._pad_language(tokens, token_mask)
                prepared = rtc.prepare(noise) if guided else None
                actions = self.chunk_graph(self.model, images, masks, tokens, token_mask, state, noise, prepared)
            else:  # rtc=None: plain Euler; with RTC each step is guided toward the committed prefix
                actions = self.model.sample(images, masks, tokens, token_mask, state, noise, rtc)
        self.train(was_training)
        return self._unnormalize_action(actions[:, :, : self.config.action_feature.shape[0]])

    def _pad_language(self, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        extra = self.config.tokenizer_max_length - tokens.shape[1]
        if extra <= 0:
            return tokens, mask
        pad_id = self.tokenize.tokenizer.pad_token_id or 0
        return F.pad(tokens, (0, extra), value=pad_id), F.pad(mask, (0, extra), value=False)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any]) -> Tensor:
        if not self._action_queue:
            chunk = self.predict_action_chunk(obs)[:, : self.config.n_action_steps]
            self._action_queue.extend(chunk.transpose(0, 1))
        return self._action_queue.popleft()

    # ------------------------------------------------------------------ optimisation
    def fsdp_units(self) -> list[nn.Module]:
        """The modules `--fsdp=true` shards one by one: each vision encoder layer. The VLM and expert layers run
        inside SmolVLMWithExpert's layer loop (their submodules are called, never their forward), and the image
        and token embeddings are used outside its forward, so those stay in the root unit (FSDP2 gathers a
        unit's weights only around its forward)."""
        return list(self.model.vlm_with_expert.vlm.model.vision_model.encoder.layers)

    def default_peft_targets(self) -> str:
        """lerobot's SmolVLA default: LoRA on the action expert's q/v projections and on the state/action/time
        projections (the task-specific layers)."""
        return rf"(model\.vlm_with_expert\.lm_expert\..*\.(q|v)_proj|model\.({PROJECTIONS}))"

    def make_optimizer(self, lr: float | None = None, fused: bool = False) -> torch.optim.Optimizer:
        """AdamW with LeRobot's SmolVLA preset (betas 0.9/0.95, eps 1e-8, weight decay 1e-10)."""
        return adamw_from_config(self.optim_groups(), self.config, lr, fused)

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, num_steps: int
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        c = self.config
        return cosine_decay_with_warmup(
            optimizer, c.scheduler_warmup_steps, c.scheduler_decay_steps, c.optimizer_lr, c.scheduler_decay_lr,
            num_steps,
        )


def _restore_stored_dtypes(module: SmolVLAPolicy, state: dict[str, Tensor], prefix: str, _meta: object) -> None:
    """state_dict post-hook: parameters store_frozen_in cast come out in their original dtype."""
    for name, dtype in module._stored_dtypes.items():
        key = prefix + name
        if key in state and state[key].dtype != dtype:
            state[key] = state[key].to(dtype)
