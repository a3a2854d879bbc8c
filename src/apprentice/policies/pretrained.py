"""A policy on disk, in LeRobot's `pretrained_model/` layout:

    config.json                   policy config ("type": "act" | "diffusion" | …)
    model.safetensors             weights, LeRobot's key names
    policy_preprocessor.json      processor pipeline (rename, to_batch, device, normalizer)
    policy_preprocessor_step_3_normalizer_processor.safetensors       stats, "<feature>.<stat>"
    policy_postprocessor.json     (unnormalizer, device)
    policy_postprocessor_step_0_unnormalizer_processor.safetensors

Loading reads only JSON and safetensors — never pickle.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from apprentice.policies import lora
from apprentice.policies.base import Policy
from apprentice.policies.config import PolicyConfig, PolicyError
from apprentice.policies.normalize import Stats

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PREPROCESSOR_NAME = "policy_preprocessor.json"
POSTPROCESSOR_NAME = "policy_postprocessor.json"
NORMALIZER_STATE = "policy_preprocessor_step_3_normalizer_processor.safetensors"
UNNORMALIZER_STATE = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"


def available_policies() -> list[str]:
    """Every policy type: each sub-package of apprentice.policies that exports POLICY (read from its
    __init__.py without importing it; shared packages such as paligemma/ export none)."""
    pkg = importlib.import_module("apprentice.policies")
    out = []
    for m in pkgutil.iter_modules(pkg.__path__):
        init = Path(pkg.__path__[0]) / m.name / "__init__.py"
        if m.ispkg and init.is_file() and "\nPOLICY = " in init.read_text():
            out.append(m.name)
    return sorted(out)


# lerobot's `type` names that differ from our folder names (config.json written by lerobot says these).
TYPE_ALIASES = {"pi0_fast": "pi0fast"}


def policy_class(policy_type: str) -> type[Policy]:
    policy_type = TYPE_ALIASES.get(policy_type, policy_type)
    if policy_type not in available_policies():
        raise PolicyError(f"unknown policy type {policy_type!r}; available: {available_policies()}")
    return importlib.import_module(f"apprentice.policies.{policy_type}").POLICY


def make_config(policy_type: str, **fields: object) -> PolicyConfig:
    """A policy config of `policy_type` with `fields` overriding LeRobot's defaults."""
    return policy_class(policy_type).config_class.from_dict(
        dict(fields), source=f"--policy.type={policy_type}"
    )


def make_policy(config: PolicyConfig | str, stats: Stats, **fields: object) -> Policy:
    """A fresh policy (random init, plus pretrained backbone weights when the config names them)."""
    if isinstance(config, str):
        config = make_config(config, **fields)
    policy = policy_class(config.type)(config, stats)
    policy.init_pretrained_backbone()
    return policy


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PolicyError(
            f"{path} is missing; a pretrained_model/ dir needs {CONFIG_NAME} and {WEIGHTS_NAME}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path} is not valid JSON ({exc}); re-export the checkpoint") from exc


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PolicyError(f"{path} is missing; the checkpoint is incomplete (was training interrupted?)")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise PolicyError(f"{path} is not a readable safetensors file ({exc}); the file is corrupt") from exc


def load_stats(directory: Path) -> tuple[Stats, dict]:
    """Normalization stats and the normalizer step's config (eps, norm_map) of a pretrained_model dir."""
    state_file, step_cfg = NORMALIZER_STATE, {}
    pre = directory / PREPROCESSOR_NAME
    if pre.is_file():
        for step in _read_json(pre).get("steps", []):
            if step.get("registry_name") == "normalizer_processor":
                state_file, step_cfg = step.get("state_file", state_file), step.get("config", {})
    flat = _read_safetensors(directory / state_file)
    stats: Stats = {}
    for name, tensor in flat.items():
        key, stat = name.rsplit(".", 1)
        stats.setdefault(key, {})[stat] = tensor
    return stats, step_cfg


HUB_FILES = ["*.json", "*.safetensors", "tokenizer*", "*.model", "vlm/*"]  # never code, never pickle


def resolve_pretrained(path: str | Path) -> Path:
    """A local pretrained_model/ dir for `path`: the dir itself (or its pretrained_model/), or a Hub repo id
    (`lerobot/smolvla_base`, `lerobot/pi0_base`) fetched through huggingface_hub into the Hugging Face cache —
    JSON, safetensors and tokenizer files only (a vlm/ folder's config and tokenizer included)."""
    directory = Path(path).expanduser()
    if (directory / "pretrained_model").is_dir():  # accept a checkpoints/<step> dir too
        return directory / "pretrained_model"
    text = str(path)
    if directory.exists() or directory.is_absolute() or text.startswith((".", "~")) or text.count("/") != 1:
        return directory
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(text, allow_patterns=HUB_FILES))
    except Exception as exc:  # offline, unknown or gated repo: one message saying what to do
        raise PolicyError(
            f"{text}: not a local directory and not downloadable from the Hub ({type(exc).__name__}: {exc}); "
            "pass a local pretrained_model/ dir, or log in / connect to the Hub"
        ) from exc


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> Policy:
    """Load a `pretrained_model/` dir (ours or lerobot-train's, local or a Hub repo id) for inference, in
    eval mode on `device`."""
    directory = resolve_pretrained(path)
    raw = _read_json(directory / CONFIG_NAME)
    if "type" not in raw:
        raise PolicyError(f"{directory / CONFIG_NAME} has no 'type' field; is this a policy config.json?")
    cls = policy_class(raw["type"])
    config = cls.config_class.from_dict(raw, source=str(directory / CONFIG_NAME))
    stats, step_cfg = load_stats(directory)
    if step_cfg.get("norm_map"):
        config.normalization_mapping = dict(step_cfg["norm_map"])
    policy = cls.from_checkpoint(config, stats, directory)
    if "eps" in step_cfg:
        policy.normalizer.eps = float(step_cfg["eps"])
    pre = directory / PREPROCESSOR_NAME
    policy.configure_from_processor(directory, _read_json(pre).get("steps", []) if pre.is_file() else [])
    if (directory / lora.ADAPTER_CONFIG).is_file():  # a LoRA adapter (PEFT layout): base weights + adapter
        base = _adapter_base(directory, config)
        _load_weights(policy, base, config)
        lora.load_adapter(policy, directory, _read_safetensors(directory / lora.ADAPTER_WEIGHTS))
    else:
        _load_weights(policy, directory, config)
    policy.config.device = str(device)
    return policy.to(device).eval()


def _load_weights(policy: Policy, directory: Path, config: PolicyConfig) -> None:
    weights = policy.adapt_state_dict(_read_safetensors(directory / WEIGHTS_NAME))
    try:
        missing, unexpected = policy.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise PolicyError(f"{directory / WEIGHTS_NAME} does not match {CONFIG_NAME}: {exc}") from exc
    missing = [k for k in missing if k not in _tied_keys(policy)]
    if missing or unexpected:
        raise PolicyError(
            f"{directory / WEIGHTS_NAME} does not match the {config.type} config in {CONFIG_NAME}: "
            f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, unexpected "
            f"{unexpected[:5]}{'…' if len(unexpected) > 5 else ''}"
        )


def _adapter_base(directory: Path, config: PolicyConfig) -> Path:
    """The pretrained_model dir a LoRA adapter was trained on (adapter_config.json's base_model_name_or_path,
    as lerobot reads it; else config.json's pretrained_path)."""
    name = lora.read_adapter_config(directory).get("base_model_name_or_path") or config.pretrained_path
    if not name:
        raise PolicyError(
            f"{directory / lora.ADAPTER_CONFIG} names no base_model_name_or_path; set it to the pretrained_model "
            "dir (or Hub id) the adapter was trained on"
        )
    base = resolve_pretrained(name)
    if not (base / WEIGHTS_NAME).is_file():
        raise PolicyError(
            f"{directory} is a LoRA adapter on {name}, but {base / WEIGHTS_NAME} is missing; put the base policy "
            f"there or edit base_model_name_or_path in {directory / lora.ADAPTER_CONFIG}"
        )
    return base


def _tied_keys(policy: Policy, state: dict[str, torch.Tensor] | None = None) -> set[str]:
    """State-dict keys that alias an earlier key's tensor (tied embeddings): saved once, under the first
    name in sorted order as safetensors' save_model does, and not expected back on load."""
    seen: dict[tuple[int, int], str] = {}
    tied = set()
    for key, value in sorted((state if state is not None else policy.state_dict()).items()):
        ident = (value.untyped_storage().data_ptr(), value.storage_offset()) if value.numel() else (id(value), 0)
        if ident in seen:
            tied.add(key)
        else:
            seen[ident] = key
    return tied


def _processor_json(name: str, steps: list[dict]) -> str:
    return json.dumps({"name": name, "steps": steps}, indent=2)


def save_policy(policy: Policy, directory: str | Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write `policy` in LeRobot's pretrained_model layout; returns the directory. `state`: the weights to
    write instead of policy.state_dict() (a full state dict gathered from FSDP shards)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = policy.config
    config.save(directory / CONFIG_NAME)
    if lora.has_lora(policy):  # lerobot's PEFT checkpoint: the adapter only, the base named in its config
        lora.save_adapter(policy, directory)
    else:
        state = state if state is not None else policy.state_dict()
        tied = _tied_keys(policy, state)
        state = {k: v.detach().to("cpu").contiguous() for k, v in state.items() if k not in tied}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    flat = {
        f"{key}.{stat}": v.detach().float().cpu().contiguous().reshape(v.shape if v.dim() else (1,))
        for key, per in policy.normalizer.stats.items()
        for stat, v in per.items()
    }
    feats = {
        k: {"type": f.type, "shape": list(f.shape)}
        for k, f in {**config.input_features, **config.output_features}.items()
    }
    norm = {"eps": policy.normalizer.eps, "features": feats, "norm_map": dict(config.normalization_mapping)}
    device = {
        "registry_name": "device_processor",
        "config": {"device": str(config.device or "cpu"), "float_dtype": None},
    }
    pre = [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        device,
        {"registry_name": "normalizer_processor", "config": norm, "state_file": NORMALIZER_STATE},
    ]
    post_norm = {**norm, "features": {k: v for k, v in feats.items() if k in config.output_features}}
    post = [
        {"registry_name": "unnormalizer_processor", "config": post_norm, "state_file": UNNORMALIZER_STATE},
        device,
    ]
    pre, post = policy.processor_steps(pre, post)
    for name, steps in (("policy_preprocessor", pre), ("policy_postprocessor", post)):
        for i, step in enumerate(steps):  # lerobot names a step's state file by its position
            if step["registry_name"] in ("normalizer_processor", "unnormalizer_processor"):
                step["state_file"] = f"{name}_step_{i}_{step['registry_name']}.safetensors"
                save_file(flat, str(directory / step["state_file"]))
        (directory / f"{name}.json").write_text(_processor_json(name, steps))
    policy.save_extra(directory)
    return directory

