"""π0-FAST's token sequences, as lerobot 0.6.1's processor and policy build them:

    prompt  = <bos> "Task: {task}, State: {s_1 s_2 ... s_n};\\n"   right-padded to tokenizer_max_length
    actions = <bos> "Action: " fast(a_1) ... fast(a_k) "|" <eos>     padded to max_action_tokens

State values are the normalised state discretised into 256 bins over [-1, 1] (np.digitize semantics).
A FAST token t lives in the text vocabulary at id `vocab_size - 1 - fast_skip_tokens - t` (the top of the
PaliGemma vocabulary, below its 128 reserved segmentation tokens).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import Tensor

from apprentice.policies.config import PolicyError
from apprentice.policies.pi0fast.fast_tokenizer import FastTokenizer

log = logging.getLogger(__name__)

ACTION_PREFIX = "Action: "
END_OF_ACTION = "|"


def load_text_tokenizer(name_or_path: str) -> object:
    """The PaliGemma text tokenizer from a local dir or the Hub, through transformers (never remote code)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(name_or_path), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        where = "local dir" if Path(name_or_path).is_dir() else "Hub repo"
        raise PolicyError(
            f"text_tokenizer_name={name_or_path!r} ({where}): cannot load a tokenizer ({exc}); pass a dir holding "
            "tokenizer.json + tokenizer_config.json (--policy.text_tokenizer_name=<dir>)"
        ) from exc


def discretize_state(state: Tensor, bins: int = 256) -> Tensor:
    """Normalised state -> bin index in [-1, bins - 1], exactly np.digitize(x, linspace(-1, 1, bins+1)[:-1]) - 1."""
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)[:-1]
    return torch.bucketize(state.detach().double().cpu(), edges, right=True) - 1


def build_prompts(tasks: list[str], state: Tensor | None) -> list[str]:
    out = []
    for i, task in enumerate(tasks):
        cleaned = task.strip().replace("_", " ").replace("\n", " ")
        if state is None:
            out.append(f"Task: {cleaned};\n")
            continue
        values = " ".join(str(int(v)) for v in discretize_state(state[i]).tolist())
        out.append(f"Task: {cleaned}, State: {values};\n")
    return out


class Pi0FastTokens:
    """Text prompts and FAST action chunks to the model's token ids and masks, and generated ids back."""

    def __init__(self, text: object, fast: FastTokenizer, max_length: int, max_action_tokens: int,
                 fast_skip_tokens: int) -> None:
        self.text, self.fast = text, fast
        self.max_length, self.max_action_tokens = max_length, max_action_tokens
        self.skip = fast_skip_tokens
        self.vocab_size = int(text.vocab_size)
        self.bos = int(text.bos_token_id)
        self.eos = int(text.eos_token_id)
        self.pad = int(text.pad_token_id if text.pad_token_id is not None else 0)
        self.prefix_ids = list(text.encode(ACTION_PREFIX, add_special_tokens=False))
        self.end_id = int(text.convert_tokens_to_ids(END_OF_ACTION))
        if self.vocab_size - 1 - self.skip - (fast.vocab_size - 1) < 0:
            raise PolicyError(
                f"FAST vocab_size={fast.vocab_size} + fast_skip_tokens={self.skip} exceed the text vocabulary "
                f"({self.vocab_size}); use a smaller FAST tokenizer"
            )
        self.prefix_missing = 0  # generated sequences that did not start with "Action: "

    # ----------------------------------------------------------------------------- prompts
    def prompts(self, tasks: list[str], state: Tensor | None, device: torch.device) -> tuple[Tensor, Tensor]:
        """(B, max_length) token ids and bool mask of `<bos> Task: …;\\n`, right-padded."""
        ids = torch.full((len(tasks), self.max_length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(tasks), self.max_length), dtype=torch.bool)
        for i, prompt in enumerate(build_prompts(tasks, state)):
            seq = [self.bos, *self.text.encode(prompt, add_special_tokens=False)][: self.max_length]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = True
        return ids.to(device), mask.to(device)

    # ----------------------------------------------------------------------------- actions
    def to_text_ids(self, fast_ids: list[int]) -> list[int]:
        return [self.vocab_size - 1 - self.skip - t for t in fast_ids]

    def actions(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised (B, T, D) actions -> (B, max_action_tokens) ids and mask of `<bos> Action: … | <eos>`."""
        fast = self.fast.encode(actions.detach().float().cpu().numpy())
        n = self.max_action_tokens
        ids = torch.full((len(fast), n), 0, dtype=torch.long)
        mask = torch.zeros((len(fast), n), dtype=torch.bool)
        for i, seq in enumerate(fast):
            full = [self.bos, *self.prefix_ids, *self.to_text_ids(seq), self.end_id, self.eos]
            if len(full) > n:
                log.warning("FAST: %d action tokens exceed max_action_tokens=%d; truncated", len(full), n)
                full = full[:n]
            ids[i, : len(full)] = torch.tensor(full)
            mask[i, : len(full)] = True
        return ids.to(actions.device), mask.to(actions.device)

    def decode(self, generated: Tensor, time_horizon: int, action_dim: int) -> Tensor:
        """Generated text ids (B, L) -> normalised actions (B, T, D); malformed sequences fall back (see FAST)."""
        out = []
        k = len(self.prefix_ids)
        for row in generated.tolist():
            if self.end_id in row:
                row = row[: row.index(self.end_id)]
            if row[:k] != self.prefix_ids:
                self.prefix_missing += 1
            # Every "Action: " occurrence is dropped, as lerobot's detokenize does.
            i, cleaned = 0, []
            while i < len(row):
                if k and row[i : i + k] == self.prefix_ids:
                    i += k
                    continue
                cleaned.append(row[i])
                i += 1
            out.append([self.vocab_size - 1 - self.skip - t for t in cleaned])
        return torch.from_numpy(self.fast.decode(out, time_horizon, action_dim)).float()
