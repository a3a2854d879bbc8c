"""SmolVLA test helpers: a tiny SmolVLM2 (config only, stock transformers classes), a tiny byte-level BPE
tokenizer trained here, a tiny two-task dataset, and tiny policy fields. Nothing comes from the Hub."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TASKS = ["reach the red target", "reach the blue target"]
CORPUS = [*TASKS, "pick up the red cube", "put it in the box", "move left", "move right", "grasp"]
SPECIAL = ["<|endoftext|>", "<unk>", "<fake_token_around_image>", "<global-img>", "<image>", "<end_of_utterance>"]

# Real SmolVLA architecture, shrunk: 4 text layers (self-attention every 2nd, cross-attention between),
# a 32x32 image -> 4x4 patches -> pixel shuffle by 2 -> 4 image tokens.
TINY = {"num_vlm_layers": 4, "self_attn_every_n_layers": 2, "resize_imgs_with_padding": [32, 32],
        "chunk_size": 5, "n_action_steps": 5, "num_steps": 3, "max_state_dim": 8, "max_action_dim": 8,
        "tokenizer_max_length": 16, "scheduler_warmup_steps": 2, "scheduler_decay_steps": 10}

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": ["j1", "j2", "j3", "j4"]},
    "observation.images.top": {"dtype": "video", "shape": [24, 32, 3], "names": ["height", "width", "channels"]},
    "action": {"dtype": "float32", "shape": [4], "names": ["j1", "j2", "j3", "j4"]},
}


def write_tokenizer(directory: Path) -> int:
    """A byte-level BPE tokenizer (as SmolVLM's) saved as a PreTrainedTokenizerFast; returns its vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([c + "\n" for c in CORPUS] * 4, trainer)
    # The named image tokens as SmolVLM2's tokenizer_config declares them (tokenizer.fake_image_token_id, …).
    named = {"fake_image_token": "<fake_token_around_image>", "global_image_token": "<global-img>",
             "image_token": "<image>", "end_of_utterance_token": "<end_of_utterance>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|endoftext|>", unk_token="<unk>",
                                   extra_special_tokens=named)
    fast.save_pretrained(str(directory))
    return tok.get_vocab_size()


def write_vlm(directory: Path, tokenizer: bool = True, tie_word_embeddings: bool = False) -> Path:
    """A tiny SmolVLM2 dir: config.json (+ tokenizer files unless tokenizer=False); lm_head untied as in
    SmolVLM2-500M unless tie_word_embeddings."""
    from transformers import SmolVLMConfig

    directory.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(directory) if tokenizer else 300
    config = SmolVLMConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "patch_size": 8, "image_size": 32},
        text_config={"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": vocab,
                     "max_position_embeddings": 256},
        scale_factor=2, vocab_size=vocab, image_token_id=4, tie_word_embeddings=tie_word_embeddings,
    )
    config.save_pretrained(str(directory))
    return directory


def write_dataset(root: Path, tasks: list[str] | None = None, episodes: int = 4, length: int = 12) -> Path:
    """Episodes alternating between `tasks`; the action direction depends on the task (so language matters)."""
    from apprentice.dataset import DatasetWriter

    tasks = TASKS if tasks is None else tasks
    rng = np.random.default_rng(0)
    with DatasetWriter.create(root, features=FEATURES, fps=30, robot_type="test_arm", vcodec="h264") as w:
        for ep in range(episodes):
            sign = 1.0 if ep % 2 == 0 else -1.0
            state = rng.uniform(-0.5, 0.5, size=4).astype(np.float32)
            for t in range(length):
                img = np.full((24, 32, 3), 40 + 10 * t, dtype=np.uint8)
                img[4:12, 8:20] = (220, 60, 60)
                action = (state + 0.1 * sign).astype(np.float32)
                w.add_frame({"observation.state": state.copy(), "observation.images.top": img, "action": action})
                state = action
            w.save_episode(task=tasks[ep % len(tasks)])
    return root


def fields(vlm_dir: Path, **extra: object) -> dict:
    """Policy config fields for the tiny model on FEATURES."""
    inputs = {"observation.state": {"type": "STATE", "shape": [4]},
              "observation.images.top": {"type": "VISUAL", "shape": [3, 24, 32]}}
    return {**TINY, "vlm_model_name": str(vlm_dir), "input_features": inputs,
            "output_features": {"action": {"type": "ACTION", "shape": [4]}}, **extra}


def stats() -> dict:
    import torch

    return {"observation.state": {"mean": torch.zeros(4), "std": torch.ones(4)},
            "action": {"mean": torch.full((4,), 0.1), "std": torch.full((4,), 2.0)}}


def perturbed_policy(vlm_dir: Path, seed: int = 0, **extra: object):
    """A tiny SmolVLA whose every parameter is nudged off its init, so zero biases and unit norms hide no path."""
    import torch

    from apprentice.policies import make_config, make_policy

    torch.manual_seed(seed)
    policy = make_policy(make_config("smolvla", **fields(vlm_dir, **extra)), stats())
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return policy


def observation(batch: int = 2, task: str | list[str] = TASKS[0], seed: int = 0) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"observation.state": torch.randn(batch, 4, generator=g),
            "observation.images.top": torch.rand(batch, 3, 24, 32, generator=g), "task": task}
