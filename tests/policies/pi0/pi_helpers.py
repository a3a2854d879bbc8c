"""π test helpers: tiny Gemma/SigLIP sizes (registered as variants), a tiny word-level PaliGemma-style
tokenizer (BOS first, right padding), stats with quantiles, and a tiny real dataset (parquet + mp4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from apprentice.policies.paligemma import GemmaVariant, VisionVariant, register_variant

VOCAB = 320
TINY_VLM = GemmaVariant(
    width=32, depth=2, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16, vocab_size=VOCAB,
    vision=VisionVariant(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         patch_size=8, projection_dim=32),
)
TINY_EXPERT = GemmaVariant(width=16, depth=2, mlp_dim=32, num_heads=2, num_kv_heads=1, head_dim=16, vocab_size=VOCAB)
register_variant("tiny_vlm", TINY_VLM)
register_variant("tiny_expert", TINY_EXPERT)

STATE_DIM, ACTION_DIM = 3, 2
TINY: dict[str, Any] = {
    "paligemma_variant": "tiny_vlm",
    "action_expert_variant": "tiny_expert",
    "chunk_size": 4,
    "n_action_steps": 2,
    "max_state_dim": 8,
    "max_action_dim": 6,
    "num_inference_steps": 3,
    "image_resolution": [32, 32],
    "tokenizer_max_length": 24,
    "scheduler_warmup_steps": 2,
    "scheduler_decay_steps": 10,
}
FEATURES = {
    "input_features": {
        "observation.state": {"type": "STATE", "shape": [STATE_DIM]},
        "observation.images.top": {"type": "VISUAL", "shape": [3, 24, 32]},
    },
    "output_features": {"action": {"type": "ACTION", "shape": [ACTION_DIM]}},
}


def tiny_tokenizer() -> Any:
    """A word-level fast tokenizer: specials, digits 0..299 and a few words; BOS prepended like Gemma's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<bos>", "<unk>", "\n", "Task", "State", "Action", ":", ",", ";", "pick", "place",
             "the", "cube", "left", "right", "go"] + [str(i) for i in range(VOCAB - 18 - 2)]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split("\n", "isolated"), pre_tokenizers.Split(" ", "removed"), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_stats() -> dict[str, dict[str, torch.Tensor]]:
    out = {}
    for key, dim in (("observation.state", STATE_DIM), ("action", ACTION_DIM)):
        g = torch.Generator().manual_seed(dim)
        mean = torch.randn(dim, generator=g)
        out[key] = {"mean": mean, "std": torch.rand(dim, generator=g) + 0.5, "min": mean - 2, "max": mean + 2,
                    "q01": mean - 1.5, "q99": mean + 1.5, "q10": mean - 1, "q90": mean + 1}
    return out


def tiny_obs(bsize: int = 2, seed: int = 0, task: str | list[str] = "pick the cube") -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.state": torch.randn(bsize, STATE_DIM, generator=g),
        "observation.images.top": torch.rand(bsize, 3, 24, 32, generator=g),
        "task": task,
    }


def tiny_policy(policy_type: str, **fields: Any) -> Any:
    from apprentice.policies import make_policy

    policy = make_policy(policy_type, tiny_stats(), **{**TINY, **FEATURES, **fields})
    policy.prompt.set(tiny_tokenizer())
    return policy


def write_tiny_dataset(root: Path, episodes: int = 2, length: int = 12) -> Path:
    """Camera-shown target -> action, with two tasks; real DatasetWriter output (parquet + mp4)."""
    from apprentice.dataset import DatasetWriter

    feats = {
        "observation.state": {"dtype": "float32", "shape": [STATE_DIM], "names": ["j1", "j2", "j3"]},
        "observation.images.top": {"dtype": "video", "shape": [24, 32, 3], "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": [ACTION_DIM], "names": ["j1", "j2"]},
    }
    rng = np.random.default_rng(0)
    with DatasetWriter.create(root, features=feats, fps=10, robot_type="test_arm", vcodec="h264") as w:
        for ep in range(episodes):
            target = rng.uniform(-1, 1, size=2)
            state = np.zeros(STATE_DIM, dtype=np.float32)
            for t in range(length):
                img = np.zeros((24, 32, 3), dtype=np.uint8)
                r, c = int((target[0] + 1) * 8) + 2, int((target[1] + 1) * 10) + 2
                img[r : r + 5, c : c + 5] = (255, 200, 40)
                action = (0.3 * target + 0.02 * t).astype(np.float32)
                w.add_frame({"observation.state": state.copy(), "observation.images.top": img, "action": action})
                state = np.array([*action, t / length], dtype=np.float32)
            w.save_episode(task="pick the cube" if ep % 2 == 0 else "place the cube")
    return root
