"""LoRA fine-tuning of a policy through the `peft` package, as lerobot 0.6.1's `--peft.*` flags.

LoRA adapters are injected in place into the policy's linear layers named by `target_modules` (the policy's
default, `Policy.default_peft_targets()`, or `--peft.target_modules`); every other parameter is frozen except
`full_training_modules`. The policy stays our Policy (no PeftModel wrapper), so the trainer, EMA and
checkpointing see the same object; the adapter is saved in PEFT's layout, the one lerobot writes:

    adapter_config.json         peft's LoraConfig; base_model_name_or_path = the policy it adapts
    adapter_model.safetensors   "base_model.model.<module>.lora_A.weight", … (PeftModel's key names)

next to config.json (use_peft: true) and the processor files. `merge_lora` folds the adapters into the
weights and unwraps the layers, giving a plain policy that saves as an ordinary model.safetensors.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import save_file

from apprentice.policies.config import PolicyError

if TYPE_CHECKING:
    from apprentice.policies.base import Policy

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # what PeftModel puts in front of the wrapped policy's keys
ADAPTER = "default"


@dataclass
class PeftSettings:
    """lerobot's PeftConfig (`--peft.<field>`), plus PEFT's `lora_dropout`."""

    # A module-name suffix, a list of suffixes, a regular expression matched against the full module name, or
    # 'all-linear'; None = the policy's default.
    target_modules: list[str] | str | None = None
    # Modules trained in full beside the adapters (PEFT's modules_to_save); None/[] = none.
    full_training_modules: list[str] | None = None
    method_type: str = "LORA"
    init_type: str | None = None  # PEFT's init_lora_weights: None (its default), "gaussian", "pissa", …
    r: int = 16
    lora_alpha: int | None = None  # None = PEFT's default (8); scaling = lora_alpha / r
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.method_type.upper() != "LORA":
            raise PolicyError(f"--peft.method_type={self.method_type}: only LORA is supported; drop the flag")
        if self.r < 1:
            raise PolicyError(f"--peft.r={self.r}: the LoRA rank must be >= 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise PolicyError(f"--peft.lora_dropout={self.lora_dropout}: must be in [0, 1)")


def _require_peft() -> None:
    try:
        import peft  # noqa: F401
    except ImportError as exc:
        raise PolicyError(
            "--policy.use_peft=true needs the peft package: pip install 'apprentice[vla]' (or pip install peft)"
        ) from exc


def _lora_config(settings: PeftSettings, targets: Any, base: str | None) -> Any:
    _require_peft()
    from peft import LoraConfig

    kwargs: dict[str, Any] = {"r": settings.r, "target_modules": targets, "lora_dropout": settings.lora_dropout}
    if settings.lora_alpha is not None:
        kwargs["lora_alpha"] = settings.lora_alpha
    if settings.init_type is not None:
        init = settings.init_type
        kwargs["init_lora_weights"] = {"true": True, "false": False}.get(init.lower(), init)
    config = LoraConfig(**kwargs)
    config.base_model_name_or_path = base
    return config


def inject(policy: Policy, config: Any, full_training: list[str]) -> None:
    from peft import inject_adapter_in_model

    policy.requires_grad_(False)
    try:
        inject_adapter_in_model(config, policy, adapter_name=ADAPTER)
    except ValueError as exc:  # peft: "Target modules … not found in the base model"
        raise PolicyError(
            f"--peft.target_modules={_show(config.target_modules)} matches no linear layer of the "
            f"{policy.config.type} policy ({str(exc).splitlines()[0][:160]}); name layers such as "
            f"{_linear_examples(policy)}"
        ) from exc
    for name, p in policy.named_parameters():
        p.requires_grad_("lora_" in name)
    for suffix in full_training:
        modules = [m for n, m in policy.named_modules() if n == suffix or n.endswith("." + suffix)]
        if not modules:
            raise PolicyError(
                f"--peft.full_training_modules: {suffix!r} names no module of the {policy.config.type} policy"
            )
        for m in modules:
            m.requires_grad_(True)
    policy.config.use_peft = True
    policy.lora_config = config
    policy.lora_full_training = list(full_training)


def _show(targets: Any) -> str:
    return targets if isinstance(targets, str) else json.dumps(sorted(targets))


def _linear_examples(policy: Policy) -> str:
    names = [n for n, m in policy.named_modules() if isinstance(m, torch.nn.Linear)]
    return ", ".join(names[:3]) + (f" (… {len(names)} in all)" if len(names) > 3 else "")


def apply_lora(policy: Policy, settings: PeftSettings) -> Policy:
    """Freeze `policy` and inject LoRA adapters (trainable) per `settings`; returns the same policy."""
    if has_lora(policy):
        return policy
    if not policy.config.pretrained_path:
        raise PolicyError(
            "--policy.use_peft=true adapts a trained policy: pass --policy.pretrained_path=<pretrained_model dir "
            "or Hub id> (training from scratch with LoRA is refused, as lerobot does)"
        )
    targets = settings.target_modules or policy.default_peft_targets()
    if not targets:
        raise PolicyError(
            f"--policy.type={policy.config.type} has no default LoRA target modules; pass --peft.target_modules="
            "<regex or [names]> (e.g. '.*\\.(q|v)_proj')"
        )
    base = str(policy.config.pretrained_path)
    if Path(base).expanduser().exists():  # a local dir: absolute, so the adapter loads from anywhere
        base = str(Path(base).expanduser().resolve())
    inject(policy, _lora_config(settings, targets, base), list(settings.full_training_modules or []))
    return policy


def has_lora(policy: Policy) -> bool:
    return getattr(policy, "lora_config", None) is not None


def trainable_parameters(policy: Policy) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in policy.named_parameters() if p.requires_grad}


def adapter_state(policy: Policy) -> dict[str, torch.Tensor]:
    """The adapter (+ fully trained modules') weights under PeftModel's saved key names."""
    from peft import get_peft_model_state_dict

    # save_embedding_layers=False: no embedding is adapted, and "auto" would look up the base's config (the Hub).
    state = dict(get_peft_model_state_dict(policy, adapter_name=ADAPTER, save_embedding_layers=False))
    # Fully trained modules: the trainable parameters that are not adapters (set by inject, kept on load).
    state.update({n: p for n, p in policy.named_parameters() if p.requires_grad and "lora_" not in n})
    return {PEFT_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def save_adapter(policy: Policy, directory: Path) -> None:
    config = policy.lora_config
    payload = config.to_dict()
    payload["target_modules"] = config.target_modules if isinstance(config.target_modules, str) else sorted(
        config.target_modules)
    # Fully trained modules are stored with the adapter under their own names, as PEFT stores modules_to_save,
    # so PeftModel.from_pretrained (lerobot's loader) restores them too.
    payload["modules_to_save"] = policy.lora_full_training or None
    (directory / ADAPTER_CONFIG).write_text(json.dumps(payload, indent=2, default=list))
    save_file(adapter_state(policy), str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def read_adapter_config(directory: Path) -> dict[str, Any]:
    path = directory / ADAPTER_CONFIG
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the LoRA adapter config ({exc}); re-save the adapter") from exc


def load_adapter(policy: Policy, directory: Path, weights: dict[str, torch.Tensor]) -> None:
    """Inject the adapter described by `directory`/adapter_config.json into `policy` (which holds the base
    weights) and load its `weights` (adapter_model.safetensors)."""
    _require_peft()
    from peft import LoraConfig

    raw = read_adapter_config(directory)
    if str(raw.get("peft_type", "LORA")).upper() != "LORA":
        raise PolicyError(f"{directory / ADAPTER_CONFIG}: peft_type {raw.get('peft_type')!r}; only LORA loads here")
    full = list(raw.get("modules_to_save") or [])
    known = set(LoraConfig.__dataclass_fields__)
    config = LoraConfig(**{k: v for k, v in raw.items() if k in known and k not in ("peft_type", "modules_to_save")})
    inject(policy, config, full)
    own = {k[len(PEFT_PREFIX):] if k.startswith(PEFT_PREFIX) else k: v for k, v in weights.items()}
    state = {}
    for key, value in own.items():  # PEFT saves without the adapter name: "…q_proj.lora_A.weight"
        state[re.sub(r"\.(lora_[A-Za-z_]+)\.", rf".\1.{ADAPTER}.", key)] = value
    _, unexpected = policy.load_state_dict(state, strict=False)
    expected = set(trainable_parameters(policy))
    if unexpected or expected - set(state):
        raise PolicyError(
            f"{directory / ADAPTER_WEIGHTS} does not match {ADAPTER_CONFIG}: missing "
            f"{sorted(expected - set(state))[:3]}, unexpected {unexpected[:3]}"
        )


def merge_lora(policy: Policy) -> Policy:
    """Fold every adapter into its base layer's weight and put the plain layer back (in place): the result
    saves as an ordinary checkpoint (use_peft false) that loads without the base or peft."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(policy.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            parent = policy.get_submodule(parent_name) if parent_name else policy
            setattr(parent, child, module.get_base_layer())
    policy.lora_config = None
    policy.config.use_peft = False
    if hasattr(policy, "peft_config"):
        del policy.peft_config
    return policy


def settings_dict(settings: PeftSettings | None) -> dict[str, Any] | None:
    return asdict(settings) if settings is not None else None
