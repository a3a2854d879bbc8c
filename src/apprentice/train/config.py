"""The training run's config: one dataclass filled from lerobot-style dotted flags
(`--policy.type=act --dataset.root=... --steps=...`), optionally on top of a train_config.json
(`--config_path=...`, ours or lerobot-train's)."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apprentice.policies import PolicyError, available_policies, policy_class
from apprentice.policies.lora import PeftSettings
from apprentice.train.errors import TrainError
from apprentice.train.flags import parse_names, parse_value, pretrained_type, split_flags

log = logging.getLogger(__name__)


INPUT_SHAPES_FLAG = "policy.input_shapes."


@dataclass
class DatasetConfig:
    repo_id: str | None = None
    root: str | None = None
    episodes: list[int] | None = None
    revision: str | None = None
    # LeRobot's default: camera mean/std are ImageNet's (right for pretrained backbones, harmless otherwise).
    use_imagenet_stats: bool = True
    streaming: bool = False


@dataclass
class WandbConfig:
    enable: bool = False
    project: str = "apprentice"
    entity: str | None = None
    notes: str | None = None
    run_id: str | None = None
    mode: str | None = None


@dataclass
class EnvConfig:
    """The sim env online training collects episodes in (`--env.type=reach`, `--env.type=xarm`, …)."""

    type: str | None = None
    task: str | None = None
    max_episode_steps: int | None = None  # None: the task's own limit (reach: 120)


@dataclass
class OnlineConfig:
    """Online training (TD-MPC's "online adaptation"), after the `--steps` offline updates:

        repeat until `steps` updates are done:
            collect `rollout_n_episodes` episodes with the current policy into the replay buffer
            do `steps_between_rollouts` updates on batches mixing replay and dataset samples

    Names are LeRobot's `online.*` (also accepted as its older flat `--online_<name>` flags).
    """

    steps: int = 0
    rollout_n_episodes: int = 1
    # None: as many updates as the last rollout had frames (FOWM's choice).
    steps_between_rollouts: int | None = None
    # Share of each batch drawn from the replay buffer; the rest comes from the dataset (if any).
    sampling_ratio: float = 0.5
    # Seed of the first online episode; episode k uses env_seed + k. None: the run's --seed.
    env_seed: int | None = None
    buffer_capacity: int | None = None  # frames, FIFO; None = unbounded
    buffer_seed_size: int = 0  # collect until the buffer holds this many frames before updating


@dataclass
class EMAConfig:
    """`--ema.*`: an exponential moving average of the policy weights (newest lerobot's flags and defaults).

    decay_t = 1 - (1 + t / inv_gamma) ** -power, clamped to [min_decay, max_decay] (diffusers' EMAModel
    warm-up, as Diffusion Policy uses); `decay` instead fixes it at every step. When enabled, the
    checkpoint's pretrained_model/ holds the EMA weights (what eval and deploy load); the live weights
    for resuming sit in training_state/."""

    enable: bool = False
    decay: float | None = None
    update_after_step: int = 0
    inv_gamma: float = 1.0
    power: float = 0.75
    min_decay: float = 0.0
    max_decay: float = 0.9999
    use_for_eval: bool = True

    def check(self) -> None:
        if not 0.0 <= self.min_decay <= self.max_decay <= 1.0:
            raise TrainError(
                f"--ema.min_decay={self.min_decay} --ema.max_decay={self.max_decay}: "
                "need 0 <= min_decay <= max_decay <= 1"
            )
        if self.inv_gamma <= 0 or self.power <= 0:
            raise TrainError(f"--ema.inv_gamma and --ema.power must be > 0 (got {self.inv_gamma}, {self.power})")
        if self.update_after_step < 0:
            raise TrainError(f"--ema.update_after_step must be >= 0 (got {self.update_after_step})")
        if self.decay is not None:
            if not 0.0 <= self.decay <= 1.0:
                raise TrainError(f"--ema.decay={self.decay}: must be in [0, 1]")
            if (self.min_decay, self.max_decay) != (0.0, 0.9999):
                raise TrainError("--ema.decay (constant) and --ema.min_decay/--ema.max_decay: set one or the other")


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    policy_type: str | None = None
    # Policy config fields given on the command line or in the config file (LeRobot field names).
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None
    job_name: str | None = None
    resume: bool = False
    seed: int | None = 1000
    num_workers: int = 4
    batch_size: int = 8
    steps: int = 100_000
    # Wall-clock budget of the update loop (seconds, from its first step): the step that crosses it is the last,
    # logged and checkpointed as if it were --steps (a benchmark with a fixed time slot). None: no budget.
    max_train_s: float | None = None
    eval_freq: int = 20_000
    log_freq: int = 200
    save_checkpoint: bool = True
    save_freq: int = 20_000
    grad_clip_norm: float = 10.0
    gradient_accumulation_steps: int = 1
    # The language instruction for language-conditioned policies (SmolVLA): used for every episode whose
    # task in meta/tasks.parquet is empty; with task_override=true it replaces every episode's task.
    task: str | None = None
    task_override: bool = False
    wandb: WandbConfig = field(default_factory=WandbConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    # Apprentice's speed levers (README, "Training", measures each).
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode (README, "Training speed")
    # Capture forward + backward + clip + optimizer step in one CUDA graph, replayed every step.
    cuda_graphs: bool = False
    # Recompute activations in backward (transformer layers, ResNet stages, UNet blocks): less memory.
    grad_checkpointing: bool = False
    ema: EMAConfig = field(default_factory=EMAConfig)
    # LoRA fine-tuning (lerobot's `--peft.*`); used when --policy.use_peft=true or any --peft.* flag is given.
    peft: PeftSettings = field(default_factory=PeftSettings)
    channels_last: bool = True  # only used on CUDA
    cache_device: str = "auto"  # where the decoded uint8 frame cache lives: auto | cpu | cuda
    freeze_backbone: bool = False
    # FSDP2 (fully_shard per transformer layer) instead of DDP under torchrun; README "Multi-GPU".
    fsdp: bool = False
    config_path: str | None = None
    # Frame cache bound (README, "Training data"): decoded uint8 frames beyond it go to a disk cache.
    # None = half the host's available memory (a third of free GPU memory for a cache on cuda).
    cache_max_gb: float | None = None
    cache_dir: str | None = None  # where disk frame caches live; default $HF_DATASETS_CACHE/apprentice_frames

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, f"--batch_size must be >= 1 (got {self.batch_size})"),
            (
                self.steps >= 1 or (self.steps == 0 and self.online.steps > 0),
                f"--steps must be >= 1, or 0 with --online.steps > 0 (got {self.steps})",
            ),
            (self.online.steps >= 0, f"--online.steps must be >= 0 (got {self.online.steps})"),
            (
                self.max_train_s is None or self.max_train_s > 0,
                f"--max_train_s must be > 0 seconds (got {self.max_train_s}); leave it out for no budget",
            ),
            (
                0.0 <= self.online.sampling_ratio <= 1.0,
                f"--online.sampling_ratio must be in [0, 1] (got {self.online.sampling_ratio})",
            ),
            (self.online.rollout_n_episodes >= 1, "--online.rollout_n_episodes must be >= 1"),
            (
                self.online.steps == 0 or self.env.type is not None,
                "--online.steps > 0 collects episodes in a sim env: pass --env.type (e.g. reach, xarm)",
            ),
            (self.gradient_accumulation_steps >= 1, "--gradient_accumulation_steps must be >= 1"),
            (self.save_freq >= 1 and self.log_freq >= 1, "--save_freq and --log_freq must be >= 1"),
            (
                self.precision in ("auto", "fp32", "bf16"),
                f"--precision={self.precision}; use auto, fp32 or bf16",
            ),
            (
                self.cache_device in ("auto", "cpu", "cuda"),
                f"--cache_device={self.cache_device}; use auto|cpu|cuda",
            ),
            (
                self.cache_max_gb is None or self.cache_max_gb >= 0,
                f"--cache_max_gb={self.cache_max_gb}; use a size in GB >= 0 (0 = every frame on disk)",
            ),
            (self.num_workers >= 0, f"--num_workers={self.num_workers}; use 0 or more"),
            (
                self.compile_mode in COMPILE_MODES,
                f"--compile_mode={self.compile_mode}; use one of {', '.join(COMPILE_MODES)}",
            ),
            (
                not (self.cuda_graphs and self.compile_mode in ("reduce-overhead", "max-autotune")),
                f"--cuda_graphs=true captures the whole step itself; --compile_mode={self.compile_mode} would "
                "capture again inside it: use --compile_mode=default or max-autotune-no-cudagraphs",
            ),
            (
                not (self.cuda_graphs and self.gradient_accumulation_steps > 1),
                "--cuda_graphs=true replays one whole step; use --gradient_accumulation_steps=1 with it",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainError(message)
        self.ema.check()
        try:
            self.peft.__post_init__()  # flags set its fields one by one, after construction
        except PolicyError as exc:
            raise TrainError(str(exc)) from exc

    @property
    def use_peft(self) -> bool:
        return bool(self.policy_overrides.get("use_peft"))

    @property
    def device(self) -> str:
        dev = self.policy_overrides.get("device")
        if dev:
            return str(dev)
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    # ----------------------------------------------------------------------------------- flags
    @classmethod
    def from_args(cls, args: Sequence[str]) -> TrainConfig:
        """Build from `--a.b=value` / `--a.b value` flags; unknown flags raise TrainError listing valid ones."""
        flags = {_ONLINE_ALIASES.get(k, k): v for k, v in split_flags(args).items()}
        base: dict[str, Any] = {}
        if "config_path" not in flags and str(flags.get("resume", "")).lower() in ("true", "1", "yes"):
            # `--output_dir=X --resume=true`: the run's own settings (batch, seed, schedule, policy fields)
            # come from its last checkpoint, as with --config_path; flags typed now still override them.
            last = Path(flags.get("output_dir", ".")) / "checkpoints" / "last"
            saved = last / "pretrained_model" / "train_config.json"
            if saved.is_file():
                try:
                    base = json.loads(saved.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise TrainError(f"{saved}: cannot read JSON ({exc}); resume with --config_path") from exc
        if "config_path" in flags:
            path = Path(flags["config_path"])
            try:
                base = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise TrainError(f"--config_path={path}: cannot read JSON ({exc})") from exc
        cfg = cls.from_dict(base, source=flags.get("config_path", "defaults"))
        cfg.config_path = flags.pop("config_path", None)
        if "policy.type" in flags:
            cfg.policy_type = flags.pop("policy.type")
            if base.get("policy", {}).get("type") not in (None, cfg.policy_type):
                cfg.policy_overrides = {}  # a different policy: the file's policy fields do not apply
        pretrained = flags.get("policy.pretrained_path") or flags.get("policy.path")
        if cfg.policy_type is None and pretrained:
            cfg.policy_type = pretrained_type(Path(pretrained))
        valid = cfg.valid_flags()
        unknown = sorted(k for k in flags if k not in valid and not k.startswith(INPUT_SHAPES_FLAG))
        if unknown:
            raise TrainError(
                f"unknown flag(s) {['--' + k for k in unknown]}. Valid flags: "
                + " ".join(f"--{k}" for k in sorted(valid))
            )
        for key, raw in flags.items():
            cfg._set(key, raw)
        if any(k.startswith("peft.") for k in flags) and "policy.use_peft" not in flags:
            cfg.policy_overrides["use_peft"] = True  # as lerobot: giving --peft.* turns PEFT on
        cfg.__post_init__()
        return cfg

    def valid_flags(self) -> set[str]:
        flags = {
            f.name
            for f in dataclasses.fields(self)
            if f.name not in ("dataset", "wandb", "env", "online", "ema", "peft", "policy_overrides", "policy_type")
        }
        flags |= {f"dataset.{f.name}" for f in dataclasses.fields(DatasetConfig)}
        flags |= {f"wandb.{f.name}" for f in dataclasses.fields(WandbConfig)}
        flags |= {f"env.{f.name}" for f in dataclasses.fields(EnvConfig)}
        flags |= {f"online.{f.name}" for f in dataclasses.fields(OnlineConfig)}
        flags |= {f"ema.{f.name}" for f in dataclasses.fields(EMAConfig)}
        flags |= {f"peft.{f.name}" for f in dataclasses.fields(PeftSettings)}
        flags |= {"policy.type", "policy.lr", "policy.path"}
        if self.policy_type:
            flags |= {f"policy.{f.name}" for f in dataclasses.fields(self._policy_config_class())}
        return flags

    def _policy_config_class(self) -> type:
        try:
            return policy_class(self.policy_type).config_class
        except PolicyError as exc:
            raise TrainError(f"--policy.type={self.policy_type}: {exc}") from exc

    def _set(self, key: str, raw: str) -> None:
        if key.startswith(INPUT_SHAPES_FLAG):
            # The seed's `--policy.input_shapes.observation.images.<camera>=[3,H,W]`: train at that image
            # size (the frames are resized once into the cache; the checkpoint's input_features record it).
            shape = parse_value(raw, "list[int]", key)
            if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
                raise TrainError(f"--{key}={raw}: expected [C,H,W] positive integers, e.g. [3,240,320]")
            self.policy_overrides.setdefault("input_shapes", {})[key[len(INPUT_SHAPES_FLAG):]] = shape
            return
        if key.startswith("policy."):
            name = {"lr": "optimizer_lr", "path": "pretrained_path"}.get(key[7:], key[7:])
            fields = {f.name: f for f in dataclasses.fields(self._policy_config_class())}
            self.policy_overrides[name] = parse_value(raw, str(fields[name].type), key)
            return
        if key in ("peft.target_modules", "peft.full_training_modules"):
            self.peft.__dict__[key[5:]] = parse_names(raw)
            return
        target: Any = self
        parts = key.split(".")
        for part in parts[:-1]:
            target = getattr(target, part)
        fields = {f.name: f for f in dataclasses.fields(target)}
        setattr(target, parts[-1], parse_value(raw, str(fields[parts[-1]].type), key))

    # ------------------------------------------------------------------------------------ json
    def to_dict(self, policy: dict[str, Any] | None = None) -> dict[str, Any]:
        """train_config.json content, in lerobot-train's shape (plus Apprentice's speed fields)."""
        out = dataclasses.asdict(self)
        out.pop("policy_overrides")
        out.pop("policy_type")
        out.pop("config_path")
        if not self.use_peft:
            out["peft"] = None  # lerobot writes null when PEFT is off
        out["policy"] = policy if policy is not None else {"type": self.policy_type, **self.policy_overrides}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "train_config.json") -> TrainConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        cfg = cls()
        policy = data.pop("policy", None) or {}
        cfg.policy_type = policy.get("type")
        cfg.policy_overrides = {k: v for k, v in policy.items() if k != "type"}
        cfg.dataset = _sub(DatasetConfig, data.pop("dataset", None) or {}, f"{source}: dataset")
        cfg.wandb = _sub(WandbConfig, data.pop("wandb", None) or {}, f"{source}: wandb")
        cfg.env = _sub(EnvConfig, data.pop("env", None) or {}, f"{source}: env")
        cfg.online = _sub(OnlineConfig, data.pop("online", None) or {}, f"{source}: online")
        cfg.ema = _sub(EMAConfig, data.pop("ema", None) or {}, f"{source}: ema")
        try:
            cfg.peft = _sub(PeftSettings, data.pop("peft", None) or {}, f"{source}: peft")
        except PolicyError as exc:
            raise TrainError(f"{source}: {exc}") from exc
        optimizer = data.get("optimizer") or {}
        if "grad_clip_norm" in optimizer and "grad_clip_norm" not in data:
            data["grad_clip_norm"] = optimizer["grad_clip_norm"]
        for key, value in data.items():
            if key in known:
                setattr(cfg, key, value)
            else:  # lerobot-train keys (env, eval, optimizer, scheduler, …) that do not change our run
                log.debug("%s: ignoring %r", source, key)
        cfg.__post_init__()
        return cfg


# LeRobot's flat pre-2025 names of the online options (`--online_steps`, …) -> `online.<name>`.
_ONLINE_ALIASES = {f"online_{f.name}": f"online.{f.name}" for f in dataclasses.fields(OnlineConfig)}


def _sub(cls: type, data: dict[str, Any], source: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def policy_types() -> list[str]:
    return available_policies()
