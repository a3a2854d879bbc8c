"""Tiny π0-FAST pieces built in the test: a word-level text tokenizer with PaliGemma's special tokens, a FAST
tokenizer fitted on smooth random chunks, and a 1-layer PaliGemma config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# A tiny π0-FAST policy's features: state/action dim D, chunk CHUNK, one IMG x IMG camera.
D, CHUNK, IMG = 4, 6, 32
FEATURES = {
    "input_features": {"observation.state": {"type": "STATE", "shape": [D]},
                       "observation.images.top": {"type": "VISUAL", "shape": [3, IMG, IMG]}},
    "output_features": {"action": {"type": "ACTION", "shape": [D]}},
}
STATS = {"observation.state": {"mean": torch.zeros(D), "std": torch.ones(D)},
         "action": {"mean": torch.zeros(D), "std": torch.ones(D)}}

TEXT_VOCAB = 640  # ids >= 96 are free for FAST tokens (vocab - 1 - skip - t)
FAST_SKIP = 8
WORDS = ["Task", "State", "Action", ":", ",", ";", "|", "\n", "reach", "the", "target", "go", "left", "right",
         *[str(i) for i in range(-1, 256)]]


def write_text_tokenizer(directory: Path) -> Path:
    """A transformers-loadable tokenizer dir (tokenizer.json + tokenizer_config.json), no SentencePiece."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    for i in range(len(vocab), TEXT_VOCAB):
        vocab[f"<unused{i}>"] = i
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"[:,;|\n]"), behavior="isolated"), pre_tokenizers.WhitespaceSplit()])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(str(directory))
    return directory


def smooth_chunks(n: int, horizon: int, dim: int, seed: int = 0) -> list[np.ndarray]:
    """Normalised-looking action chunks: slow sinusoids plus a little noise (what FAST compresses well)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, horizon)[:, None]
    out = []
    for _ in range(n):
        wave = np.sin(2 * np.pi * (t * rng.uniform(0.2, 1.5, dim) + rng.uniform(0, 1, dim)))
        out.append(rng.uniform(-1, 1, dim) + 0.5 * wave + 0.01 * rng.standard_normal((horizon, dim)))
    return out


def write_fast_tokenizer(directory: Path, horizon: int, dim: int, vocab_size: int = 320) -> Path:
    from apprentice.policies.pi0fast import FastTokenizer

    tok = FastTokenizer.fit(smooth_chunks(200, horizon, dim), scale=10.0, vocab_size=vocab_size,
                            time_horizon=horizon, action_dim=dim)
    return tok.save(directory)


def tiny_vlm_config(image_size: int = 32) -> dict:
    return {
        "text_config": {"model_type": "gemma", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "vocab_size": TEXT_VOCAB,
                        "hidden_activation": "gelu_pytorch_tanh"},
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": image_size,
                          "patch_size": 8, "projection_dim": 32, "vision_use_head": False},
        "image_token_index": TEXT_VOCAB - 1,
        "projection_dim": 32,
    }


def tiny_fields(tmp: Path, chunk: int = 6, dim: int = 4, image_size: int = 32) -> dict:
    """--policy.* fields of a tiny π0-FAST whose tokenizers live under `tmp`."""
    text = tmp / "text_tok"
    fast = tmp / "fast_tok"
    if not text.is_dir():
        write_text_tokenizer(text)
    if not fast.is_dir():
        write_fast_tokenizer(fast, chunk, dim)
    return {"vlm_config": tiny_vlm_config(image_size), "text_tokenizer_name": str(text),
            "action_tokenizer_name": str(fast), "chunk_size": chunk, "n_action_steps": chunk,
            "image_resolution": [image_size, image_size], "tokenizer_max_length": 48, "max_action_tokens": 48,
            "max_decoding_steps": 40, "fast_skip_tokens": FAST_SKIP}
