"""What SmolVLA needs beside its weights: the VLM's config and tokenizer, and LeRobot's processor files.

Where the VLM's config.json and tokenizer come from, first match wins:
1. the checkpoint's own `vlm/` folder (ours save it there, so a checkpoint is self-contained);
2. `vlm_model_name` as a local directory (`--policy.vlm_model_name=<dir>`);
3. `vlm_model_name` as a Hub repo, through huggingface_hub (config and tokenizer files only; the weights
   too only with load_vlm_weights) — only when a policy is built, never at import.
transformers only reads these local files (`trust_remote_code` is never set).

Language, as LeRobot 0.6.1's preprocessor (`smolvla_new_line_processor` + `tokenizer_processor`): the task
gets a trailing newline, then the tokenizer pads on the right to the longest in the batch (or
`tokenizer_max_length` with pad_language_to="max_length") and truncates at `tokenizer_max_length`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from apprentice.policies.config import PolicyError
from apprentice.policies.smolvla.configuration_smolvla import SmolVLAConfig

VLM_DIR = "vlm"  # inside a pretrained_model/ dir
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
HUB_PATTERNS = ["config.json", "tokenizer*", "vocab.json", "merges.txt", "special_tokens_map.json",
                "added_tokens.json", "chat_template*", "processor_config.json", "preprocessor_config.json"]
LANGUAGE_TOKENS = "observation.language.tokens"
LANGUAGE_MASK = "observation.language.attention_mask"


def resolve_vlm_dir(config: SmolVLAConfig, checkpoint_dir: Path | None = None) -> Path:
    """The local directory holding the VLM's config.json and tokenizer (see the module docstring)."""
    if checkpoint_dir is not None and (checkpoint_dir / VLM_DIR / "config.json").is_file():
        return checkpoint_dir / VLM_DIR
    name = config.vlm_model_name
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if local.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1:
        raise PolicyError(
            f"--policy.vlm_model_name={name}: no such directory; pass a local dir with the SmolVLM2 config.json "
            "and tokenizer files, or a Hub id like HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
        )
    from huggingface_hub import snapshot_download

    patterns = HUB_PATTERNS + (["*.safetensors", "*.safetensors.index.json"] if config.load_vlm_weights else [])
    try:
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as exc:  # no network, unknown repo, gated repo: one message saying what to do
        raise PolicyError(
            f"--policy.vlm_model_name={name}: cannot fetch its config/tokenizer from the Hub ({type(exc).__name__}: "
            f"{exc}); download it elsewhere and pass --policy.vlm_model_name=<local dir>"
        ) from exc


def load_vlm_config(directory: Path) -> Any:
    """The SmolVLM config (vision, connector and text configs) in `directory`."""
    from transformers import AutoConfig

    path = directory / "config.json"
    if not path.is_file():
        raise PolicyError(f"{path} is missing; --policy.vlm_model_name must name a dir with the VLM's config.json")
    config = AutoConfig.from_pretrained(str(directory), trust_remote_code=False)
    if getattr(config, "model_type", None) != "smolvlm":
        raise PolicyError(
            f"{path}: model_type {getattr(config, 'model_type', None)!r} is not 'smolvlm'; SmolVLA needs a "
            "SmolVLM2 backbone (e.g. HuggingFaceTB/SmolVLM2-500M-Video-Instruct)"
        )
    return config


def load_tokenizer(directory: Path) -> Any:
    """The VLM's tokenizer from local files; a clear error when they are not there."""
    from transformers import AutoTokenizer

    if not any((directory / f).is_file() for f in TOKENIZER_FILES):
        raise PolicyError(
            f"{directory}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); SmolVLA tokenises the task with the "
            "VLM's tokenizer: pass --policy.vlm_model_name=<dir with the SmolVLM2 tokenizer and config.json>"
        )
    return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)


class TaskTokenizer:
    """Task strings -> (tokens (B, L) long, attention mask (B, L) bool), as LeRobot's preprocessor."""

    def __init__(self, tokenizer: Any, config: SmolVLAConfig) -> None:
        self.tokenizer = tokenizer
        self.max_length = config.tokenizer_max_length
        self.padding = config.pad_language_to

    @staticmethod
    def prompt(task: str) -> str:
        return task if task.endswith("\n") else f"{task}\n"

    def __call__(self, tasks: list[str]) -> tuple[Tensor, Tensor]:
        out = self.tokenizer(
            [self.prompt(t) for t in tasks], max_length=self.max_length, truncation=True,
            padding=self.padding, padding_side="right", return_tensors="pt",
        )
        return out["input_ids"], out["attention_mask"].to(torch.bool)

    def token_id(self, token: str) -> int:
        ids = self.tokenizer.convert_tokens_to_ids(token)
        if ids is None or ids == self.tokenizer.unk_token_id:
            raise PolicyError(f"add_image_special_tokens: the tokenizer has no {token!r} token; set it to false")
        return int(ids)


def check_tasks(tasks: Any, batch: int, where: str) -> list[str]:
    """A list of `batch` non-empty task strings, or one clear error."""
    if isinstance(tasks, str):
        tasks = [tasks] * batch
    if tasks is None or not isinstance(tasks, list | tuple) or len(tasks) != batch:
        raise PolicyError(
            f"smolvla: {where} has no 'task' for each of its {batch} samples (got {tasks!r}); SmolVLA is "
            "conditioned on an instruction: pass --task=\"…\" (train/eval/infer) or the policy node's task"
        )
    empty = [i for i, t in enumerate(tasks) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise PolicyError(
            f"smolvla: {where}: the task of sample(s) {empty[:5]} is empty; give the instruction with "
            "--task=\"…\" (used for every episode without a task)"
        )
    return list(tasks)


def save_vlm_assets(directory: Path, vlm_config: Any, tokenizer: Any) -> None:
    """Write the VLM's config and tokenizer into `<pretrained_model>/vlm/` (the checkpoint stands alone)."""
    target = directory / VLM_DIR
    target.mkdir(parents=True, exist_ok=True)
    vlm_config.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))


def preprocessor_steps(config: SmolVLAConfig, device: dict, normalizer: dict) -> list[dict]:
    """LeRobot 0.6.1's SmolVLA preprocessor, step for step (so its state file is step 5's)."""
    return [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "smolvla_new_line_processor", "config": {}},
        {"registry_name": "tokenizer_processor", "config": {
            "max_length": config.tokenizer_max_length, "task_key": "task", "padding_side": "right",
            "padding": config.pad_language_to, "truncation": True, "tokenizer_name": config.vlm_model_name}},
        device,
        normalizer,
    ]


def read_tokenizer_step(directory: Path) -> dict:
    """The tokenizer step's config in a checkpoint's policy_preprocessor.json ({} when absent)."""
    path = directory / "policy_preprocessor.json"
    if not path.is_file():
        return {}
    try:
        steps = json.loads(path.read_text()).get("steps", [])
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path} is not valid JSON ({exc}); re-export the checkpoint") from exc
    return next((s.get("config", {}) for s in steps if s.get("registry_name") == "tokenizer_processor"), {})
