"""The language prompt of the π models and its PaliGemma tokenization (lerobot's processor steps, in-policy).

π0: the task text ending in a newline. π0.5: "Task: <task>, State: <256-bin state>;\\nAction: ", the
state normalized to [-1, 1] then discretized (openpi's PaligemmaTokenizer). Both are tokenized with the
PaliGemma tokenizer, right-padded to `tokenizer_max_length`, truncated beyond it.

The tokenizer is loaded on first use, never at import: from $APPRENTICE_PALIGEMMA_TOKENIZER when set
(a local directory, for machines without the Hub), else from the checkpoint directory when it holds
tokenizer files (ours do), else by name through transformers (the Hub or its local cache; lerobot's
checkpoints name `google/paligemma-3b-pt-224`). It is only ever a tokenizer file — no remote code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from apprentice.policies.config import PolicyError

PALIGEMMA_TOKENIZER = "google/paligemma-3b-pt-224"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
TOKENIZER_ENV = "APPRENTICE_PALIGEMMA_TOKENIZER"  # a local tokenizer dir (or Hub name) that wins over all else


def pi0_prompt(task: str) -> str:
    return task if task.endswith("\n") else f"{task}\n"


def discretize_state(state: np.ndarray) -> np.ndarray:
    """Normalized state (..., D) in [-1, 1] -> integer bins 0..255 (values outside land in -1 / 255)."""
    return np.digitize(state, bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1


def pi05_prompt(task: str, state_bins: np.ndarray) -> str:
    text = task.strip().replace("_", " ").replace("\n", " ")
    return f"Task: {text}, State: {' '.join(map(str, state_bins.tolist()))};\nAction: "


def batch_tasks(batch: dict[str, Any], bsize: int) -> list[str]:
    """The batch's `task` strings (one per sample; a single string is shared); "" when it has none."""
    task = batch.get("task")
    if task is None:
        return [""] * bsize
    if isinstance(task, str):
        return [task] * bsize
    tasks = [str(t) for t in task]
    if len(tasks) != bsize:
        raise PolicyError(f"batch 'task' has {len(tasks)} strings for {bsize} samples; give one per sample")
    return tasks


class PromptTokenizer:
    """Holds (or lazily loads) the PaliGemma tokenizer and turns prompts into fixed-length token tensors."""

    def __init__(self, max_length: int, name: str = PALIGEMMA_TOKENIZER) -> None:
        self.max_length, self.name = max_length, name
        self.tokenizer: Any = None
        self.search_dirs: list[Path] = []

    def set(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def get(self) -> Any:
        if self.tokenizer is None:
            self.tokenizer = self._load()
        return self.tokenizer

    def _load(self) -> Any:
        from transformers import AutoTokenizer

        local = os.environ.get(TOKENIZER_ENV)
        if local:
            return AutoTokenizer.from_pretrained(local, trust_remote_code=False)
        for directory in self.search_dirs:
            if any((directory / f).is_file() for f in TOKENIZER_FILES):
                return AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False)
        try:
            return AutoTokenizer.from_pretrained(self.name, trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise PolicyError(
                f"cannot load the PaliGemma tokenizer {self.name!r} ({exc}); put its tokenizer.json in the "
                "checkpoint directory, or log in to the Hub / fill the HF cache, or set policy.prompt.set(tok)"
            ) from exc

    def __call__(self, prompts: list[str], device: torch.device) -> tuple[Tensor, Tensor]:
        enc = self.get()(
            prompts,
            max_length=self.max_length,
            truncation=True,
            padding="max_length",
            padding_side="right",
            return_tensors="pt",
        )
        return enc["input_ids"].to(device), enc["attention_mask"].to(device=device, dtype=torch.bool)

    def save(self, directory: Path) -> None:
        """Write the tokenizer's files beside the weights, so the checkpoint needs no Hub to act."""
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(directory))
